"""The admin side: the admin app, the dashboard, the guard's rollback timer and reports."""
