"""Keystone's public WSGI application for gunicorn.

Keystone parses sys.argv with oslo.config when it builds its application, and would take gunicorn's own
arguments for its options: clear them first. The configuration file comes from OS_KEYSTONE_CONFIG_DIR and
OS_KEYSTONE_CONFIG_FILES, which scripts/keystone sets.
"""

import sys

sys.argv = sys.argv[:1]

from keystone.server.wsgi import initialize_public_application  # noqa: E402

application = initialize_public_application()
