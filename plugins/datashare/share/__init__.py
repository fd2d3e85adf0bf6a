"""The SQL share: releases loaded into the share database, views per dataset, roles per agency.

Public modules: :mod:`.target` (:class:`~.target.ShareTarget`, the share opened once from its
connection and handed to every function below), :mod:`.sqlshare` (publish and withdraw a release
in SQLite or PostgreSQL), :mod:`.sqlroles` (agency roles and grants on PostgreSQL),
:mod:`.sqlshare_places` (restricted datasets in per-agency databases). :mod:`.sqlshare_pg` holds
PostgreSQL details for the others.
"""
