"""The ``snmp_ap`` collector plug-in: village access points polled over SNMP (see README.md).

Nothing here imports pysnmp at module level: a board's config is validated, and its other
collectors run, without paying pysnmp's start-up until an SNMP poll actually begins.
"""
