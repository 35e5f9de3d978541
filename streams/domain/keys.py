"""Keys of the worker's state tables: the tenant and the id, never the id alone.

Two tenants' producers may reuse an interaction or agent id (each numbers its own); a
state keyed by the id alone would let one tenant's event change the other's contact.
The Kafka message key stays the bare id (it picks the partition, as producers expect);
only the table key carries the tenant. Ids cannot hold control characters (the event
schema's ``Ident``), so the unit separator cannot be part of either side.
"""
from __future__ import annotations

SEP = b"\x1f"


def state_key(tenant: str, ident: bytes) -> bytes:
    return tenant.encode() + SEP + ident


def split_key(key: bytes) -> tuple[str | None, str]:
    """(tenant, id); a key written before tenant-qualified keys has no tenant (None)."""
    tenant, sep, ident = key.partition(SEP)
    if not sep:
        return None, key.decode()
    return tenant.decode(), ident.decode()


def ident_of(key: bytes) -> str:
    return split_key(key)[1]


def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2, as every producer uses) gives a key:
    where a message keyed so lands, and so which worker holds its state."""
    from kafka.partitioner.default import murmur2

    return (murmur2(key) & 0x7FFFFFFF) % partitions
