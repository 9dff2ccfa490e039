"""Everything written to S3: envelope encryption, sealed records and parts, the manifest, the audit trail."""
