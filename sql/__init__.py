"""recon's schema migrations, one folder per dialect, shipped inside the package as `recon.sql`."""
