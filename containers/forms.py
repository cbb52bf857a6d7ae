"""Dashboard forms: they only read what the browser sent; services.py decides what is valid.

Field names match the `field` of services.ServiceError (see FIELD_OF), so a refusal from the
service lands next to the input it is about.
"""

from __future__ import annotations

from typing import Any

from django import forms

from . import bounds, permissions
from .models import Host, Image, Team

RESTART_CHOICES = [("no", "no"), ("always", "always"), ("unless-stopped", "unless stopped"),
                   ("on-failure", "on failure")]
SIGNAL_CHOICES = [(s, s) for s in ("SIGKILL", "SIGTERM", "SIGINT", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGQUIT")]
SAVE_FORMATS = [("docker-archive", "docker-archive (docker load)"), ("oci-archive", "OCI archive")]
# ServiceError.field (or a failed job's error_field: a container spec field) -> form field, where they differ.
FIELD_OF = {"mounts": "volumes", "team_id": "team", "user_spec": "user", "ref": "ref", "file": "file"}
# Container spec fields typed as text in the create form (the spec parses them: "64m", "sh -c 'x'", …).
SPEC_TEXT_FIELDS = ("command", "entrypoint", "workdir", "user", "hostname", "memory", "cpus", "pids_limit", "disk")


def lines(text: str) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def key_values(form: forms.Form, field: str) -> dict[str, str]:
    """'KEY=VALUE' per line -> dict; a line without '=' is an error on `field`."""
    out: dict[str, str] = {}
    for n, line in enumerate(lines(form.cleaned_data.get(field, "")), 1):
        key, eq, value = line.partition("=")
        if not eq or not key.strip():
            raise forms.ValidationError(f"line {n}: expected KEY=VALUE, got {line[:40]!r}")
        out[key.strip()] = value
    return out


def form_field(form: forms.Form, field: str | None) -> str | None:
    """The form's input for an error's field (None: the form as a whole)."""
    name = FIELD_OF.get(field, field) if field else None
    return name if name in form.fields else None


def add_service_error(form: forms.Form, error) -> None:
    """Put a services.ServiceError next to its field (or on top of the form when it names none)."""
    form.add_error(form_field(form, error.field), error.message)


class ImageSelect(forms.Select):
    """Options carry data-host so the page can offer only the images of the chosen host."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.host_of: dict[str, int] = {}

    def create_option(self, name, value, label, selected, index, subindex=None, attrs=None):
        option = super().create_option(name, value, label, selected, index, subindex, attrs)
        host = self.host_of.get(str(value))
        if host is not None:
            option["attrs"]["data-host"] = str(host)
        return option


class OpenChoiceField(forms.ChoiceField):
    """A select whose value is checked by services.py (with a readable message), not by the choice list."""

    def valid_value(self, value: Any) -> bool:
        return True


def _team_choices(user, least: str) -> list[tuple[str, str]]:
    teams = Team.objects.all() if user.is_superuser else Team.objects.filter(
        pk__in=permissions.teams_with_role(user, least))
    return [("", "— none (only me) —")] + [(str(t.pk), t.name) for t in teams]


class ContainerCreateForm(forms.Form):
    host = OpenChoiceField(help_text="Online hosts only.")
    image = OpenChoiceField(widget=ImageSelect, help_text="Images on the chosen host you may run.",
                            error_messages={"required": "pick an image: none you may run is on the chosen host "
                                                        "(pick another host, or import one on the Images page)"})
    name = forms.CharField(required=False, max_length=128,
                           help_text="Letters, digits, _ . - ; left empty, one is made up.")
    command = forms.CharField(required=False, help_text="As in a shell, e.g. sh -c 'echo hi'. Empty: the image's.")
    entrypoint = forms.CharField(required=False, help_text="Empty: the image's entrypoint.")
    env = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}), label="Environment",
                          help_text="One KEY=VALUE per line.")
    workdir = forms.CharField(required=False, label="Working directory")
    user = forms.CharField(required=False, help_text="uid[:gid] or a name known in the image.")
    hostname = forms.CharField(required=False)
    memory = forms.CharField(required=False, label="Memory limit",
                             help_text="e.g. 64m or 1g; at least 6m. Empty: the team's default.")
    cpus = forms.CharField(required=False, label="CPUs", help_text="e.g. 0.5")
    pids_limit = forms.CharField(required=False, label="Process limit",
                                 help_text="Most processes at once. Empty: the team's default.")
    disk = forms.CharField(required=False, label="Disk limit",
                           help_text="Most the container may write, e.g. 10g. Empty: the team's default.")
    restart_policy = forms.ChoiceField(choices=RESTART_CHOICES, initial="no", label="Restart policy")
    max_retries = forms.CharField(required=False, label="Retries (on failure)", help_text="Empty: no limit.")
    labels = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}),
                             help_text="One KEY=VALUE per line.")
    volumes = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}),
                              help_text="One per line: volname:/data or /host/dir:/dst[:ro] (bind mounts: admins).")
    # networking (spec fields of the same names; containers/services/networks.py)
    networks = forms.CharField(required=False, help_text="Your networks to join, comma-separated. Empty: your "
                                                         "bridge network; none: no network.")
    ports = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), label="Published ports",
                            help_text="One per line: [host_port:]port[/udp], on 127.0.0.1 (empty host port: a free "
                                      "one).")
    network_aliases = forms.CharField(required=False, label="Network aliases",
                                      help_text="More names others on its networks reach it by, comma-separated.")
    dns = forms.CharField(required=False, label="DNS servers", help_text="Addresses, comma-separated.")
    extra_hosts = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), label="Extra hosts",
                                  help_text="One name:ip per line, added to /etc/hosts.")
    team = forms.ChoiceField(required=False, help_text="Members of the team see and operate it by role.")
    read_only = forms.BooleanField(required=False, label="Read-only root filesystem")
    tty = forms.BooleanField(required=False, label="Allocate a terminal (tty)")
    start = forms.BooleanField(required=False, initial=True, label="Start it now")

    def __init__(self, *args: Any, user, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.user = user
        hosts = list(Host.objects.online())
        self.fields["host"].choices = [(str(h.pk), h.name) for h in hosts]
        images = [i for i in permissions.visible_images(user).filter(host__in=hosts).order_by("name", "tag", "host")
                  if permissions.can(user, "image.use", i)]
        multi = len(hosts) > 1
        self.fields["image"].choices = [
            (str(i.pk), f"{i.ref} ({i.host.name})" if multi else i.ref) for i in images]
        self.fields["image"].widget.host_of = {str(i.pk): i.host_id for i in images}
        if not self.is_bound and not self.initial.get("host"):
            from .form_defaults import default_host

            chosen = default_host(user, hosts, ("container.create",))
            if chosen is not None:
                self.initial["host"] = str(chosen.pk)
                first = next((i for i in images if i.host_id == chosen.pk), None)
                if first is not None and not self.initial.get("image"):
                    self.initial["image"] = str(first.pk)
        self.fields["team"].choices = _team_choices(user, permissions.OPERATOR)
        for name in ("name", "command", "entrypoint", "workdir", "user", "hostname"):
            self.fields[name].widget.attrs.setdefault("autocomplete", "off")
        self.fields["command"].widget.attrs["spellcheck"] = "false"

    def clean_host(self) -> str:
        value = self.cleaned_data.get("host", "")
        if not bounds.as_id(value, Host) or not permissions.visible_hosts(self.user).filter(pk=value).exists():
            raise forms.ValidationError("no such host")
        return value

    def clean_image(self) -> Image:
        value = self.cleaned_data.get("image", "")
        image = permissions.visible_images(self.user).filter(pk=value).first() if bounds.as_id(value, Image) else None
        if image is None:
            raise forms.ValidationError("no such image: pick one from the list")
        return image

    def clean_env(self) -> list[str]:
        return lines(self.cleaned_data.get("env", ""))

    def clean_labels(self) -> dict[str, str]:
        return key_values(self, "labels")

    def clean_volumes(self) -> list[str]:
        return lines(self.cleaned_data.get("volumes", ""))

    def _items(self, field: str) -> list[str]:
        return [p.strip() for line in lines(self.cleaned_data.get(field, "")) for p in line.split(",") if p.strip()]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        from .spec_fields import field_errors

        # All the bad spec fields at once (memory, cpus and processes wrong: three messages, not one).
        typed = {n: (data.get(n) or "").strip() for n in SPEC_TEXT_FIELDS if n not in self.errors}
        for field, message in field_errors(typed).items():
            name = form_field(self, field)
            if name and name not in self.errors:
                self.add_error(name, message)
        return data

    def restart(self) -> str:
        policy = self.cleaned_data.get("restart_policy") or "no"
        retries = (self.cleaned_data.get("max_retries") or "").strip()
        if policy == "on-failure" and retries:
            return f"{policy}:{retries}"
        return policy

    def service_kwargs(self) -> dict[str, Any]:
        """Arguments of services.create_container (host/image by pk; the service checks them): the container
        spec's fields as typed here (empty: unset), under their spec names."""
        d = self.cleaned_data
        spec = {name: (d[name].strip() or None) for name in SPEC_TEXT_FIELDS}
        spec.update(env=d["env"], labels=d["labels"], mounts=d["volumes"], restart_policy=self.restart(),
                    read_only=d["read_only"], tty=d["tty"], networks=self._items("networks"),
                    ports=self._items("ports"), network_aliases=self._items("network_aliases"),
                    dns=self._items("dns"), extra_hosts=lines(d["extra_hosts"]))
        return {"host": int(d["host"]), "image": d["image"], "name": d["name"].strip(), "spec": spec,
                "start": d["start"], "team": d["team"] or None}


def initial_from_params(params: dict[str, Any], container_or_job) -> dict[str, Any]:
    """Form input rebuilt from a container.create job's params (to try again after a host error)."""
    import shlex

    def joined(v):
        return shlex.join(v) if isinstance(v, list) else (v or "")

    policy, _, retries = str(params.get("restart_policy") or "no").partition(":")
    host_id = getattr(container_or_job, "host_id", None)
    # The image by name in the asker's own name space, else the system's (never another tenant's).
    asker = getattr(container_or_job, "requested_by_id", None)
    spaces = ([f"u{asker}"] if asker else []) + [""]
    image = Image.objects.filter(host_id=host_id, name=str(params.get("image", "")).rpartition(":")[0],
                                 tag=str(params.get("image", "")).rpartition(":")[2],
                                 namespace__in=spaces).order_by("-namespace").first()
    memory = params.get("memory")
    return {
        "host": str(host_id or ""), "image": str(image.pk) if image else "", "name": params.get("name", ""),
        "command": joined(params.get("command")), "entrypoint": joined(params.get("entrypoint")),
        "env": "\n".join(f"{k}={v}" for k, v in (params.get("env") or {}).items()),
        "workdir": params.get("workdir") or "", "user": params.get("user") or "",
        "hostname": params.get("hostname") or "", "memory": str(memory) if memory else "",
        "cpus": str(params.get("cpus") or ""), "pids_limit": str(params.get("pids_limit") or ""),
        "disk": str(params.get("disk") or ""), "restart_policy": policy, "max_retries": retries,
        "labels": "\n".join(f"{k}={v}" for k, v in (params.get("labels") or {}).items()),
        "volumes": "\n".join(params.get("requested_mounts") or params.get("mounts") or []), "read_only": bool(params.get("read_only")),
        "tty": bool(params.get("tty")), "start": bool(params.get("start", True)),
        "networks": ", ".join(params.get("requested_networks") or params.get("networks") or []),
        "ports": "\n".join(params.get("ports") or []), "dns": ", ".join(params.get("dns") or []),
        "network_aliases": ", ".join(a for a in params.get("network_aliases") or [] if a != params.get("name")),
        "extra_hosts": "\n".join(params.get("extra_hosts") or []),
    }


class CommitForm(forms.Form):
    ref = forms.CharField(label="Image name:tag", max_length=300)
    message = forms.CharField(required=False, max_length=500)
    team = forms.ChoiceField(required=False)
    shared = forms.BooleanField(required=False, label="Shared with everyone")

    def __init__(self, *args: Any, user, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fields["team"].choices = _team_choices(user, permissions.OPERATOR)


class ImportForm(forms.Form):
    host = forms.ChoiceField()
    file = forms.FileField(label="Root filesystem tarball", help_text=".tar, .tar.gz or .tar.zst")
    ref = forms.CharField(label="Image name:tag", max_length=300)
    team = forms.ChoiceField(required=False)
    shared = forms.BooleanField(required=False, label="Shared with everyone")

    def __init__(self, *args: Any, user, **kwargs: Any):
        super().__init__(*args, **kwargs)
        hosts = list(Host.objects.online())
        self.fields["host"].choices = [(str(h.pk), h.name) for h in hosts]
        self.fields["team"].choices = _team_choices(user, permissions.OPERATOR)
        if not self.is_bound and not self.initial.get("host"):
            from .form_defaults import default_host

            chosen = default_host(user, hosts, ("image.import", "image.load", "container.create"))
            if chosen is not None:
                self.initial["host"] = str(chosen.pk)


class LoadForm(ImportForm):
    """`docker load`: an archive's own tags name the images (no name:tag to give)."""

    file = forms.FileField(label="Image archive", help_text="docker-archive (docker save) or OCI archive")

    def __init__(self, *args: Any, user, **kwargs: Any):
        kwargs.setdefault("auto_id", "id_load_%s")
        super().__init__(*args, user=user, **kwargs)
        del self.fields["ref"]


class TagForm(forms.Form):
    ref = forms.CharField(label="New name:tag", max_length=300)


class ShareForm(forms.Form):
    team = forms.ChoiceField(required=False, help_text="Teams where you are an admin.")
    shared = forms.BooleanField(required=False, label="Shared with everyone")

    def __init__(self, *args: Any, user, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fields["team"].choices = _team_choices(user, permissions.ADMIN)


class SaveForm(forms.Form):
    format = forms.ChoiceField(choices=SAVE_FORMATS, initial="docker-archive")
