"""The inventory in SQL and onboarding: devices added, renamed, moved and decommissioned
while the cloud runs, each new board with its broker credentials and a one-time bundle.

``store`` (SQL: communes, sites, nodes, devices with who added and decommissioned them, the
version counter, sealed bundles), ``live`` (keeps each process's ``Inventory`` current),
``broker`` (the broker's passwd/ACL and its reload, from the cloud), ``bundles`` (the ZIP a
technician downloads once), ``service`` (the operations, for the API, the page and the
CLI); routes in ``cloud/api/inventory.py``, the page in ``cloud/web/onboarding.py``.
"""
