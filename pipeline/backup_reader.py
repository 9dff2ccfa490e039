"""Reading a verified backup's decrypted records back, part by part (restore, diff and the demo's accounting)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pipeline import manifest, store
from pipeline.aws import Clients
from pipeline.layout import BackupLocation


@dataclass(frozen=True)
class BackupReader:
    clients: Clients
    loc: BackupLocation
    doc: dict[str, Any]

    @classmethod
    def open(cls, clients: Clients, loc: BackupLocation) -> BackupReader:
        return cls(clients, loc, manifest.read_manifest(clients, loc))

    def _records(self, kind: str, shard: str | None = None) -> Iterator[dict[str, Any]]:
        for obj in self.doc["objects"]:
            if obj["kind"] != kind or (shard is not None and obj.get("shard") != shard):
                continue
            yield from store.get_sealed(
                self.clients,
                self.loc,
                self.loc.root + obj["name"],
                expected_sha256=obj["sha256"],
                kms_key_arn=self.doc["kmsKeyArn"],
            )

    def config(self) -> dict[str, Any]:
        return next(self._records("config"))

    def users(self, shard: str | None = None) -> Iterator[dict[str, Any]]:
        return self._records("users", shard)

    def memberships(self) -> Iterator[dict[str, Any]]:
        return self._records("memberships")
