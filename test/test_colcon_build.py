"""`colcon build` of this package in a fresh workspace, with this venv's ROS 2 wheels as the underlay.

The package is normally installed by scripts/setup.sh (plain CMake into .venv); this checks the
colcon path a ROS 2 user takes: the same CMakeLists.txt builds in <ws>/src, installs into
<ws>/install, and the workspace's local_setup.bash makes the nodes, messages and share files
findable ahead of the copy already installed in the venv.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VENV = Path(sys.prefix)
NODES = ("audio_capture", "audio_encoder", "motion_generator", "avatar_control", "face_renderer", "audio_player",
         "foxglove_bridge", "preview")
COMMANDS = ("vasa-generate", "vasa-avatar")
# What a build or install produces in the source tree; never copied into the workspace.
SKIP_TOP = {".venv", "build", "install", "log", "out", ".git", ".pytest_cache"}


def _source_files() -> list[Path]:
    """The package's files, relative to REPO: git's tracked and untracked-but-not-ignored files
    (the working tree as it is), or every file outside build outputs when this is no git checkout."""
    if (REPO / ".git").exists() and shutil.which("git"):
        out = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             capture_output=True, check=True).stdout
        files = [Path(p) for p in out.decode().split("\0") if p]
    else:
        files = [p.relative_to(REPO) for p in REPO.rglob("*") if p.is_file()]
    return [f for f in files if f.parts[0] not in SKIP_TOP and "__pycache__" not in f.parts
            and f.suffix != ".pyc" and (REPO / f).is_file()]


def _copy_sources(dest: Path) -> None:
    for rel in _source_files():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, dest / rel)


def _base_env(tmp_path: Path) -> dict[str, str]:
    """This process's environment as an activated venv with nothing but the venv as ROS underlay."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "CMAKE_PREFIX_PATH", "COLCON_PREFIX_PATH", "AMENT_CURRENT_PREFIX",
                        "COLCON_CURRENT_PREFIX", "PYTHONHOME")}
    env["VIRTUAL_ENV"] = str(VENV)
    env["PATH"] = os.pathsep.join([str(VENV / "bin"), env.get("PATH", os.defpath)])
    env["AMENT_PREFIX_PATH"] = str(VENV)
    env["COLCON_HOME"] = str(tmp_path / "colcon_home")  # no user defaults.yaml or mixins
    env["PYTHONNOUSERSITE"] = "1"
    return env


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A workspace with this package built by colcon; its path and the environment it was built in."""
    colcon = VENV / "bin" / "colcon"
    if not colcon.is_file():
        pytest.fail(f"colcon is not installed in {VENV} (colcon-common-extensions in requirements.txt)")
    for tool in ("cmake", "cc", "c++", "bash"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} is not installed (scripts/setup.sh installs the build tools)")
    tmp = tmp_path_factory.mktemp("colcon")
    ws = tmp / "ws"
    _copy_sources(ws / "src" / "vasa_nodes")
    env = _base_env(tmp)
    cmd = [str(colcon), "build", "--merge-install", "--parallel-workers", "2", "--event-handlers", "console_direct-",
           "--cmake-args", f"-DPython3_EXECUTABLE={sys.executable}", "-DBUILD_TESTING=OFF", "-Wno-dev"]
    proc = subprocess.run(cmd, cwd=ws, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        logs = "\n".join(f"--- {p}\n{p.read_text(errors='replace')[-4000:]}"
                         for p in sorted((ws / "log" / "latest_build" / "vasa_nodes").glob("std*.log")))
        pytest.fail(f"colcon build failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}\n{logs}")
    return ws, env


def _workspace_env(ws: Path, env: dict[str, str]) -> dict[str, str]:
    """The environment after `source <ws>/install/local_setup.bash`, as a user's new shell has it."""
    out = subprocess.run(["bash", "-c", '. "$1/install/local_setup.bash" && env -0', "bash", str(ws)],
                         env=env, capture_output=True, check=True, timeout=60).stdout
    return dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)


def test_executables_installed(workspace):
    ws, _ = workspace
    install = ws / "install"
    for name in NODES:
        exe = install / "lib" / "vasa_nodes" / name
        assert exe.is_file(), f"missing {exe}"
        assert os.access(exe, os.X_OK), f"{exe} is not executable"
        shebang = exe.read_text().splitlines()[0]
        assert shebang == f"#!{sys.executable}", shebang
    for name in COMMANDS:
        exe = install / "bin" / name
        assert exe.is_file() and os.access(exe, os.X_OK), f"missing or not executable: {exe}"
    assert (install / "share" / "ament_index" / "resource_index" / "packages" / "vasa_nodes").is_file()


def test_workspace_environment_finds_package(workspace, tmp_path):
    ws, env = workspace
    install = (ws / "install").resolve()
    wenv = _workspace_env(ws, env)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(install), "platbase": str(install)}))
    assert str(site) in wenv.get("PYTHONPATH", "").split(os.pathsep)
    assert wenv["AMENT_PREFIX_PATH"].split(os.pathsep)[0] == str(install)
    code = (
        "import json, vasa_nodes, vasa_nodes.msg\n"
        "from vasa_nodes.msg import AudioChunk, AudioFeatures, FaceMotion, AvatarControl\n"
        "from ament_index_python.packages import get_package_share_directory\n"
        "AudioChunk(); FaceMotion()\n"
        "print(json.dumps({'msg': vasa_nodes.msg.__file__, 'pkg': vasa_nodes.__file__,\n"
        "                  'share': get_package_share_directory('vasa_nodes')}))\n"
    )
    # -P and a neutral cwd: nothing from the source tree or the cwd on sys.path.
    proc = subprocess.run([sys.executable, "-P", "-c", code], cwd=tmp_path, env=wenv,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    import json

    found = json.loads(proc.stdout.strip().splitlines()[-1])
    # The workspace's copy, not the one scripts/setup.sh put into the venv.
    assert Path(found["msg"]).resolve().is_relative_to(site), found
    assert Path(found["pkg"]).resolve().is_relative_to(site), found
    share = Path(found["share"]).resolve()
    assert share == install / "share" / "vasa_nodes"
    assert (share / "launch" / "avatar.launch.py").is_file()
    assert (share / "config" / "avatar.yaml").is_file()
