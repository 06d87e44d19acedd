"""The admin side: the admin app (`admin`), the dashboard (`dashboard`), the shadow diffs report
(`diffs`) and the guard's rollback timer (`rollback`)."""
