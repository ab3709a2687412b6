"""containers.podman.podman with pipelining: the local dev guest in one `podman exec` per task.

The collection's plugin runs `podman exec` without --interactive, so it cannot feed a module
through stdin and declares no pipelining: every task then costs a `podman mount`, a temp
directory, a file copy, a chmod and the run (4-5 podman processes, ~1 s each on a loaded
2-core host). Here a task with input runs `podman exec --interactive`, modules arrive through
stdin (pipelining), and nothing is mounted: the few files a task copies (template, copy) go
through `podman cp`, which also sees the guest's /tmp (a tmpfs `podman mount` does not show).
"""

from __future__ import annotations

from ansible_collections.containers.podman.plugins.connection.podman import (
    Connection as PodmanConnection,
)

DOCUMENTATION = r"""
name: rec_podman
short_description: Run tasks in a podman container, with pipelining
description:
  - containers.podman.podman, with modules fed through `podman exec --interactive`.
options:
  remote_addr:
    description: The container's name or id.
    default: inventory_hostname
    vars:
      - name: inventory_hostname
      - name: ansible_host
  remote_user:
    description: The user to run as in the container (default the container's).
    vars:
      - name: ansible_user
    ini:
      - section: defaults
        key: remote_user
    env:
      - name: ANSIBLE_REMOTE_USER
    cli:
      - name: user
    keyword:
      - name: remote_user
  podman_extra_args:
    description: Extra arguments for every podman command.
    default: ""
    vars:
      - name: ansible_podman_extra_args
  podman_executable:
    description: The podman command.
    default: podman
    vars:
      - name: ansible_podman_executable
  pipelining:
    description: Feed modules through stdin.
    default: true
    type: boolean
    vars:
      - name: ansible_pipelining
"""


class Connection(PodmanConnection):
    transport = "rec_podman"
    has_pipelining = True

    def _connect(self):
        self._connected = True  # no `podman mount`: put_file/fetch_file use `podman cp`
        return self

    def _podman(self, cmd, cmd_args=None, in_data=None, use_container_id=True):
        if in_data is not None and isinstance(cmd, list) and cmd[:1] == ["exec"]:
            cmd = ["exec", "--interactive", *cmd[1:]]
        return super()._podman(cmd, cmd_args, in_data, use_container_id)
