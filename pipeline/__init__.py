"""cognito-backuper: encrypted, verifiable backups and approved restores of Cognito user pools."""

__version__ = "0.1.0"
