"""Pre-study scanner qualification: profiles (what a study asks of a scanner) and certificates (what it got)."""
