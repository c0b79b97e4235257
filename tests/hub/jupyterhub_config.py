"""JupyterHub for tests/test_jupyterhub.py: everything on 127.0.0.1, every file under one directory.

The test fills in the ``DW_HUB_*`` environment variables. The parts are the
stock ones: configurable-http-proxy from npm (tests/hub/node_modules), the
built-in shared-password authenticator (DummyAuthenticator's password is
deprecated since JupyterHub 5.3 in its favour), and the simple local process
spawner, which runs each single-user server as the hub's own OS user (root in
CI, hence ``--allow-root``).
"""

import os
from pathlib import Path

c = get_config()  # type: ignore[name-defined]  # noqa: F821

env = os.environ
state = Path(env["DW_HUB_DIR"])  # the test's tmp_path: database, secrets, pid files, homes

c.JupyterHub.bind_url = f"http://127.0.0.1:{env['DW_HUB_PORT']}/"
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{env['DW_HUB_API_PORT']}/"
c.JupyterHub.db_url = f"sqlite:///{state / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(state / "jupyterhub.pid")
c.JupyterHub.cleanup_servers = True  # the hub's shutdown stops the single-user servers (the default)

c.ConfigurableHTTPProxy.command = [env["DW_HUB_CHP"]]
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{env['DW_HUB_PROXY_API_PORT']}"
c.ConfigurableHTTPProxy.pid_file = str(state / "jupyterhub-proxy.pid")

c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = env["DW_HUB_PASSWORD"]
c.Authenticator.allowed_users = {env["DW_HUB_USER"]}

c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = str(state / "home" / "{username}")
c.Spawner.ip = "127.0.0.1"
c.Spawner.cmd = [env["DW_HUB_SINGLEUSER"]]
c.Spawner.args = ["--allow-root"]  # JupyterLab's own settings: the user's ~/.jupyter, written by the test
c.Spawner.notebook_dir = env["DW_HUB_NOTEBOOKS"]
c.Spawner.default_url = "/lab"
c.Spawner.environment = {
    # Desktops' sockets live here (short: unix socket paths are).
    "JUPYTER_RUNTIME_DIR": env["DW_HUB_RUNTIME_DIR"],
}
# Two cores for the hub, the proxy, a single-user server and Chromium: be patient.
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 90
