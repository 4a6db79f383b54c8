"""The browser apps the service serves: the gallery at ``/`` and the operator dashboard at ``/admin``.

Their static files are vendored in ``static/`` (no network at run time) and served under
content-addressed, immutable URLs by ``assets``.
"""
