"""The DRF gateway's unit tests run Django in-process (no database: none is configured)."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "drf_app.settings")
django.setup()
