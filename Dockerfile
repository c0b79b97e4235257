# desktop_widget in the Jupyter docker-stacks base image:
#   docker build -t desktop-widget .
#   docker run --rm -p 127.0.0.1:8888:8888 --security-opt seccomp=unconfined desktop-widget
# The system set-up is scripts/install-system.sh, the same script ./run (and so CI) uses.

# -- build the wheel (the JS bundle needs Node.js; the image does not) --
FROM quay.io/jupyter/base-notebook:latest AS build
USER root
RUN apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nodejs npm \
    && rm -rf /var/lib/apt/lists/*
COPY --chown=${NB_UID}:${NB_GID} . /tmp/src
USER ${NB_UID}
RUN pip wheel --no-deps --wheel-dir /tmp/wheels /tmp/src

# -- the image --
FROM quay.io/jupyter/base-notebook:latest
USER root
COPY scripts/install-system.sh /tmp/install-system.sh
# TigerVNC, XFCE (its screensaver removed: it locks with a password nobody knows), dbus-x11, ffmpeg,
# fonts (CJK and colour emoji too).
RUN /tmp/install-system.sh && rm -rf /var/lib/apt/lists/* /tmp/install-system.sh \
    # XFCE's first start as root leaves root-owned caches in the user's home.
    && fix-permissions "/home/${NB_USER}"
COPY --from=build --chown=${NB_UID}:${NB_GID} /tmp/wheels /tmp/wheels
USER ${NB_UID}
RUN pip install --no-cache-dir /tmp/wheels/*.whl && rm -rf /tmp/wheels
COPY --chown=${NB_UID}:${NB_GID} notebooks/ /home/${NB_USER}/notebooks/
WORKDIR /home/${NB_USER}
