"""demo_api package."""
