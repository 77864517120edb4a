"""``ferxai install-profile``: put the SLURM profile where a bare ``--profile slurm`` finds it.

Snakemake 9 resolves ``--profile NAME`` as ./NAME, then $XDG_CONFIG_HOME/snakemake/NAME
(~/.config/snakemake/NAME), then /etc/xdg/snakemake/NAME, never ./profiles/NAME. This command
copies the repository's ``profiles/NAME/config.yaml`` (or the copy shipped inside the package) to
the user's Snakemake config folder, filling in the partition and account placeholders on request.
The package ships ``resources/profile_NAME.yaml`` (a flat name: package data is ``resources/*``)
for installs without the checkout; a test keeps it equal to the checkout's file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ferxai.core.errors import ConfigError, FerxaiError
from ferxai.core.io import write_text

PROFILES = ("slurm",)
CPU_PARTITION = "EDIT_ME_cpu_partition"
GPU_PARTITION = "EDIT_ME_gpu_partition"
_ACCOUNT_LINE = re.compile(r"^(?P<indent>\s*)#\s*slurm_account:\s*\"EDIT_ME_account\"(?P<rest>.*)$")


def profile_source(name: str) -> Path:
    """The profile's config.yaml: the checkout's profiles/NAME first (editable install), else the
    copy shipped as package data."""
    if name not in PROFILES:
        raise ConfigError(
            f"install-profile: unknown profile {name!r}; choose one of {', '.join(PROFILES)}."
        )
    package_dir = Path(__file__).resolve().parents[1]  # ferxai/, this module being in ferxai/core/
    candidates = [
        package_dir.parents[1] / "profiles" / name / "config.yaml",
        package_dir / "resources" / f"profile_{name}.yaml",
    ]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FerxaiError(
        f"install-profile: no {name} profile found (looked in {candidates[0]} and "
        f"{candidates[1]}). Reinstall ferxai, or use --profile with the path of your checkout's "
        f"profiles/{name}."
    )


def snakemake_config_dir() -> Path:
    """$XDG_CONFIG_HOME/snakemake (default ~/.config/snakemake), where bare profile names resolve."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "snakemake"


def render_profile(
    text: str,
    partition: str | None = None,
    gpu_partition: str | None = None,
    account: str | None = None,
) -> str:
    """Fill the ``# EDIT:`` placeholders; the GPU partition defaults to ``partition``."""
    for label, value in (
        ("partition", partition),
        ("gpu-partition", gpu_partition),
        ("account", account),
    ):
        if value is not None and not re.fullmatch(r"[A-Za-z0-9_.:+-]+", value):
            raise ConfigError(
                f"install-profile: --{label} {value!r} is not a valid SLURM name "
                "(letters, digits, _ . : + - only)."
            )
    gpu_partition = gpu_partition or partition
    if partition:
        text = text.replace(CPU_PARTITION, partition)
    if gpu_partition:
        text = text.replace(GPU_PARTITION, gpu_partition)
    if account:
        lines = []
        for line in text.splitlines(keepends=True):
            match = _ACCOUNT_LINE.match(line.rstrip("\n"))
            if match:
                line = f'{match["indent"]}slurm_account: "{account}"{match["rest"]}\n'
            lines.append(line)
        text = "".join(lines)
    return text


def install_profile(
    name: str,
    dest: str | os.PathLike | None = None,
    partition: str | None = None,
    gpu_partition: str | None = None,
    account: str | None = None,
    force: bool = False,
) -> Path:
    """Write the profile's config.yaml into ``dest`` (default: the Snakemake config folder/NAME).

    An existing, different config.yaml is kept unless ``force``; an identical one is left alone.
    Returns the path written (or found identical).
    """
    source = profile_source(name)
    text = render_profile(source.read_text(encoding="utf-8"), partition, gpu_partition, account)
    target_dir = Path(dest) if dest else snakemake_config_dir() / name
    target = target_dir / "config.yaml"
    if target.is_file():
        if target.read_text(encoding="utf-8") == text:
            return target
        if not force:
            raise FerxaiError(
                f"install-profile: {target} already exists and differs from the {name} profile "
                f"this ferxai would install. Keep your edits (nothing was changed), or rerun with "
                "--force to replace it."
            )
    elif target_dir.exists() and not target_dir.is_dir():
        raise FerxaiError(f"install-profile: {target_dir} exists and is not a folder; use --dest.")
    write_text(target, text)
    return target


def placeholders_left(text: str) -> list[str]:
    """The ``EDIT_ME`` placeholders still in a rendered profile (commented ones do not count)."""
    active = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    return sorted(set(re.findall(r"EDIT_ME_\w+", active)))


# ------------------------------------------------------------------------------------------ CLI


def cli_install_profile_args(parser) -> None:
    parser.add_argument("name", choices=PROFILES, help="which profile to install")
    parser.add_argument(
        "--dest",
        help="folder to write config.yaml into "
        "(default: $XDG_CONFIG_HOME/snakemake/NAME, i.e. ~/.config/snakemake/NAME)",
    )
    parser.add_argument(
        "--partition", help="SLURM partition for CPU jobs (and GPU jobs by default)"
    )
    parser.add_argument("--gpu-partition", help="SLURM partition for the GPU jobs, when different")
    parser.add_argument("--account", help="SLURM account to bill (sbatch -A)")
    parser.add_argument(
        "--force", action="store_true", help="replace an existing, different config.yaml"
    )
    parser.set_defaults(provenance_inputs=(), provenance_outputs=())


def cli_install_profile(args) -> None:
    target = install_profile(
        args.name, args.dest, args.partition, args.gpu_partition, args.account, args.force
    )
    print(f"installed the {args.name} profile: {target}")
    left = placeholders_left(target.read_text(encoding="utf-8"))
    if left:
        print(
            f"still to edit in {target}: {', '.join(left)} (lines marked '# EDIT:'), "
            "or rerun with --partition/--gpu-partition and --force."
        )
    if args.dest:
        print(f"use it with: snakemake --profile {target.parent}")
    else:
        print(f"use it with: snakemake --profile {args.name}")
