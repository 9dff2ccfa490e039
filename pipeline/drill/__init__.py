"""Restore drills: a scheduled proof that the latest backup of each pool really restores.

A drill restores the configuration and a random sample of users (with their groups) of a pool's latest backup
into a scratch pool it creates and tags itself, verifies the sample with the restore's own VerifyRestore,
records the result (audit record and metric) and deletes the scratch pool, whatever happened.
"""
