"""The doctor's probe: one fixed shell script per host (one SSH round trip) printing `@@ section` lines, and
its parser. Values arrive as positional arguments (`sh -c SCRIPT _ ARG...`, each quoted by the transport's
render_command), never spliced into the script text; `~/` paths are expanded by the remote shell."""

from __future__ import annotations

from llmctl.doctor.types import MODULES, GpuProbe, HostNeeds, Probe
from llmctl.fleet.facts_parse import NVIDIA_SMI_GPUS, parse_gpu_csv, sections
from llmctl.fleet.provision import marker_name

# $1 venv, $2 python, $3 model cache, $4 packages (count), $5 ports (count), $6 weight markers (count), then
# the packages as (distribution, module) pairs, the ports as (port, replica run dir) pairs and the markers.
PROBE_SCRIPT = r"""
x() { case $1 in "~"|"~/"*) printf '%s' "$HOME${1#\~}";; *) printf '%s' "$1";; esac; }
v=$(x "$1"); py=$2; c=$(x "$3"); np=$4; nq=$5; nm=$6; shift 6
echo "@@ python"
if command -v "$py" >/dev/null 2>&1; then
  "$py" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null || echo missing
else echo missing; fi
echo "@@ venv"; if [ -x "$v/bin/python" ]; then echo ok; else echo missing; fi
echo "@@ packages"
while [ "$np" -gt 0 ]; do
  if [ -x "$v/bin/python" ]; then
    "$v/bin/python" -c 'import importlib.metadata as m, importlib.util as u, sys
p, mod = sys.argv[1:3]
try: v = m.version(p)
except m.PackageNotFoundError: v = "-"
try: found = u.find_spec(mod) is not None
except Exception: found = False
print(p, v, "yes" if found else "no")' "$1" "$2" 2>/dev/null || echo "$1 - no"
  else echo "$1 - no"; fi
  shift 2; np=$((np - 1))
done
echo "@@ ports"
# The same test as the replica launcher's PORT_TAKEN refusal (llmctl.control.launch): does 127.0.0.1:PORT
# accept connections? A live pid in the replica's own run dir means it is that replica, which apply adopts.
# Exit 3 (not 1, which a Python error also gives) means taken.
t='import socket, sys; sys.exit(3 if socket.socket().connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 0)'
while [ "$nq" -gt 0 ]; do
  d=$(x "$2")
  "$py" -c "$t" "$1" 2>/dev/null
  case $? in
    0) s=free;;
    3) s=taken; p=$(cat "$d/pid" 2>/dev/null) && [ -n "$p" ] && kill -0 "$p" 2>/dev/null && s=own;;
    *) s=unknown;;
  esac
  echo "$1 $s"; shift 2; nq=$((nq - 1))
done
echo "@@ weights"
while [ "$nm" -gt 0 ]; do [ -f "$c/$1" ] && echo "$1"; shift; nm=$((nm - 1)); done
echo "@@ token"
if [ -n "${HF_TOKEN:-}" ] || [ -n "${HUGGING_FACE_HUB_TOKEN:-}" ] || [ -s "$c/token" ]; then echo yes; else echo no; fi
echo "@@ disk"; d=$c
while [ ! -d "$d" ]; do case $d in */*) d=${d%/*}; d=${d:-/};; *) d=.;; esac; done
echo "$d"; df -Pk "$d" | tail -n 1
echo "@@ nvidia_smi_status"
if command -v nvidia-smi >/dev/null 2>&1; then
  echo ok
  echo "@@ gpus"
  @NVIDIA_SMI_GPUS@
  echo "@@ apps"
  nvidia-smi --query-compute-apps=gpu_uuid,pid,used_memory --format=csv,noheader,nounits 2>/dev/null
  echo "@@ smi_header"
  nvidia-smi 2>/dev/null
else
  echo missing
fi
""".replace("@NVIDIA_SMI_GPUS@", NVIDIA_SMI_GPUS)


def probe_argv(needs: HostNeeds, run_dirs: dict[int, str]) -> list[str]:
    """`run_dirs`: port -> run dir of the replica planned on it (to tell that replica from a stranger)."""
    # Without a plan nothing is pinned: every engine llmctl runs is looked for, to list what is installed.
    wanted = [pkg for pkg, _ in needs.packages] if needs.planned else list(MODULES)
    packages = [a for pkg in wanted for a in (pkg, MODULES.get(pkg, pkg))]
    ports = [a for q in needs.ports for a in (str(q.port), run_dirs.get(q.port, "/nonexistent"))]
    markers = [marker_name(w.model) for w in needs.weights]
    counts = [str(len(wanted)), str(len(needs.ports)), str(len(markers))]
    return [
        "sh",
        "-c",
        PROBE_SCRIPT,
        "llmctl-doctor",
        needs.venv,
        needs.python,
        needs.model_cache,
        *counts,
        *packages,
        *ports,
        *markers,
    ]


def parse_probe(text: str) -> tuple[Probe, frozenset[str]]:
    """The probe's output as a Probe, and the weight markers found. Raises ValueError on nvidia-smi rows that
    do not parse."""
    s = sections(text)
    python = (s.get("python") or ["missing"])[0].strip()
    packages: dict[str, tuple[str | None, bool]] = {}
    for line in s.get("packages", []):
        parts = line.split()
        if len(parts) == 3:
            packages[parts[0]] = (None if parts[1] == "-" else parts[1], parts[2] == "yes")
    ports = {}
    for line in s.get("ports", []):
        port, _, state = line.partition(" ")
        if port.isdigit():
            ports[int(port)] = state.strip()
    disk = s.get("disk", [])
    fields = disk[-1].split() if len(disk) > 1 else []
    free = int(fields[3]) * 1024 if len(fields) > 3 and fields[3].isdigit() else None
    smi = (s.get("nvidia_smi_status") or ["missing"])[0] == "ok"
    gpus: tuple[GpuProbe, ...] = ()
    driver = cuda = None
    if smi:
        pids: dict[str, list[int]] = {}
        for line in s.get("apps", []):
            parts = [p.strip() for p in line.split(",")]
            # nvidia-smi prints nothing (or a "No running processes found" line) when no process runs.
            if len(parts) == 3 and parts[1].isdigit():
                pids.setdefault(parts[0], []).append(int(parts[1]))
        gpus = tuple(
            GpuProbe(g.index, g.name, g.memory_total_mib, g.memory_used_mib, tuple(pids.get(g.uuid, ())))
            for g in parse_gpu_csv(s.get("gpus", []))
        )
        header = "\n".join(s.get("smi_header", []))
        driver = _after(header, "Driver Version:")
        cuda = _after(header, "CUDA Version:")
    probe = Probe(
        python=None if python == "missing" else python,
        venv=(s.get("venv") or ["missing"])[0] == "ok",
        packages=packages,
        nvidia_smi=smi,
        gpus=gpus,
        driver=driver,
        cuda=cuda,
        ports=ports,
        disk_path=disk[0] if disk else "",
        disk_free_bytes=free,
        token=(s.get("token") or ["no"])[0] == "yes",
    )
    return probe, frozenset(s.get("weights", []))


def _after(text: str, label: str) -> str | None:
    _, found, rest = text.partition(label)
    words = rest.split()
    return words[0] if found and words else None
