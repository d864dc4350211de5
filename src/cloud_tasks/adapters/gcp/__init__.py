"""GCP adapters: Pub/Sub, Compute Engine, Cloud Billing, GCE metadata. Imported only when used."""
