"""Reading a verified backup's decrypted records back, part by part (restore, diff and the demo's accounting)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pipeline.core.aws import Clients
from pipeline.core.layout import BackupLocation
from pipeline.sealing import manifest, store


@dataclass(frozen=True)
class BackupReader:
    clients: Clients
    loc: BackupLocation
    doc: dict[str, Any]

    @classmethod
    def open(
        cls,
        clients: Clients,
        loc: BackupLocation,
        *,
        expected_key_arn: str | None = None,
        pin: manifest.ManifestPin | None = None,
    ) -> BackupReader:
        document, _ = manifest.read_pinned(clients, loc, expected_key_arn, pin)
        return cls(clients, loc, document)

    def objects(self, kind: str, shard: str | None = None) -> list[dict[str, Any]]:
        """The manifest's entries of one kind (and shard), in manifest order."""
        return [
            o for o in self.doc["objects"] if o["kind"] == kind and (shard is None or o.get("shard") == shard)
        ]

    def read(self, obj: dict[str, Any]) -> list[dict[str, Any]]:
        """One object's records, checked against the manifest's hash and key."""
        return store.get_sealed(
            self.clients,
            self.loc,
            self.loc.root + obj["name"],
            expected_sha256=obj["sha256"],
            kms_key_arn=self.doc["kmsKeyArn"],
        )

    def _records(self, kind: str, shard: str | None = None) -> Iterator[dict[str, Any]]:
        for obj in self.objects(kind, shard):
            yield from self.read(obj)

    def config(self) -> dict[str, Any]:
        return next(self._records("config"))

    def users(self, shard: str | None = None) -> Iterator[dict[str, Any]]:
        return self._records("users", shard)

    def memberships(self) -> Iterator[dict[str, Any]]:
        return self._records("memberships")
