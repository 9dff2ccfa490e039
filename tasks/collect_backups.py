"""CollectBackups: every pool of the run has a verified backup; the run's summary goes to S3."""

from pipeline.backup import steps as backup
from pipeline.core.aws import default_clients
from pipeline.core.contracts import BackupsResult, CollectBackupsEvent
from pipeline.core.lambda_runtime import LambdaContext
from pipeline.core.metrics import measured


@measured("CollectBackups")
def handler(event: CollectBackupsEvent, context: LambdaContext | None = None) -> BackupsResult:
    return backup.collect_backups(default_clients(), event)
