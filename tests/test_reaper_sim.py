"""The REAPER host simulator and the scripts' use of REAPER's API, without an engine: every RPR_ call in the
scripts against the official signature list, the simulator's Python conventions, the installer."""
import ast
import json
from pathlib import Path

import pytest
from reaper_sim import BUILTINS, SIGNATURES, ReaperSim, SimError

from daw_bridge import protocol as p
from daw_bridge.install import InstallError, install_reaper_files

ROOT = Path(__file__).resolve().parent.parent
REAPER = ROOT / "daw_bridge" / "reaper"
ACTIONS = sorted(REAPER.glob("DDSP - *.py"))  # the action scripts
PACKAGE = sorted((REAPER / "ddsp_reaper").glob("*.py"))  # the ddsp_reaper package they import
SCRIPTS = ACTIONS + PACKAGE  # every Python file that runs inside REAPER


def rpr_calls(path: Path):
    """(name, number of positional arguments or None for *args, line) of every RPR_* call in a file."""
    calls = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else None
            if name is None and isinstance(node.func, ast.Subscript) and isinstance(node.func.slice, ast.Constant):
                name = node.func.slice.value  # context["RPR_defer"](...)
            if isinstance(name, str) and name.startswith("RPR_"):
                starred = any(isinstance(a, ast.Starred) for a in node.args) or node.keywords
                calls.append((name, None if starred else len(node.args), node.lineno))
    return calls


def test_scripts_are_the_expected_files():
    names = {path.name for path in REAPER.glob("*.py") if path.name != "__init__.py"}
    assert names == {path.name for path in ACTIONS} == {
        "DDSP - Render selected MIDI items.py", "DDSP - Regenerate expression of selected MIDI items.py",
        "DDSP - Follow edits (toggle).py", "DDSP - Choose preset for selected tracks.py"}
    assert "__init__.py" in {path.name for path in PACKAGE} and len(PACKAGE) > 1


def test_every_rpr_call_matches_the_official_signature():
    """Each RPR_ function the scripts call exists in reaper_plugin_functions.h (v7.78) and is called with exactly
    its parameter count; the simulator provides each with the same count."""
    sim = ReaperSim("/nonexistent", "/nonexistent")
    seen = set()
    for path in SCRIPTS:
        for name, n_args, line in rpr_calls(path):
            api = name[4:]
            where = f"{path.name}:{line}"
            if api in BUILTINS:
                assert n_args == BUILTINS[api], where
                continue
            assert api in SIGNATURES, f"{where}: {name} is not a REAPER API function"
            assert n_args == len(SIGNATURES[api].params), \
                f"{where}: {name} called with {n_args} arguments, REAPER's takes {len(SIGNATURES[api].params)}"
            assert hasattr(sim.module, name), f"{where}: the simulator lacks {name}"
            seen.add(api)
    assert len(seen) > 40  # the parse found the calls


def test_signature_list_parses_known_entries():
    note = SIGNATURES["MIDI_GetNote"]
    assert note.returns == "bool" and len(note.params) == 9
    assert [note.params[i][1] for i in note.outs] == ["selectedOut", "mutedOut", "startppqposOut", "endppqposOut",
                                                      "chanOut", "pitchOut", "velOut"]
    assert SIGNATURES["InsertEnvelopePoint"].outs == (6,)  # bool* noSortInOptional
    assert SIGNATURES["TrackFX_AddByName"].outs == ()
    assert SIGNATURES["GetSetMediaItemInfo_String"].outs == (2,)
    assert len(SIGNATURES) > 800


@pytest.fixture
def sim(tmp_path):
    install_reaper_files(tmp_path / "reaper", None)
    return ReaperSim(tmp_path / "reaper", tmp_path / "project", sample_rate=16000)


def test_python_conventions(sim):
    api = sim.module
    track = sim.add_track("Lead")
    item = sim.add_midi_item(track, 0, 4, [(0, 1, 60, 100), (1, 2, 62, 90)])
    take = api.RPR_GetActiveTake(api.RPR_GetTrackMediaItem(api.RPR_GetTrack(0, 0), 0))
    assert take == item.take.ptr and take.startswith("(MediaItem_Take*)0x")
    # out-parameters: (retval, every parameter with the outs filled)
    assert api.RPR_MIDI_GetNote(take, 1, 0, 0, 0.0, 0.0, 0, 0, 0) == (1, take, 1, 0, 0, 960.0, 1920.0, 0, 62, 90)
    assert api.RPR_MIDI_CountEvts(take, 0, 0, 0) == (2, take, 2, 0, 0)
    assert api.RPR_GetProjectPath("", 512) == (str(sim.project.path), 512)  # void: the parameters only
    assert api.RPR_GetSetMediaTrackInfo_String(track.ptr, "P_NAME", "", False) == (1, track.ptr, "P_NAME", "Lead", 0)
    assert api.RPR_GetProjExtState(0, "x", "y", "", 10) == (0, 0, "x", "y", "", 10)
    # NULL and stale pointers
    assert api.RPR_GetTrack(0, 5) == "(MediaTrack*)0x0000000000000000"
    assert api.RPR_CountTrackMediaItems(item.ptr) == 0  # wrong type: passed on as NULL
    assert api.RPR_TakeIsMIDI(take) == 1 and isinstance(api.RPR_TakeIsMIDI(take), int)
    # ctypes argument checks
    with pytest.raises(SimError):
        api.RPR_GetTrack(0, 1.0)
    with pytest.raises(TypeError):
        api.RPR_GetTrack(0)


def test_tempo_map_and_ppq_conversion(sim):
    api = sim.module
    track = sim.add_track("T")
    item = sim.add_midi_item(track, 4, 4, [(0, 0.5, 60, 100), (3, 3.5, 60, 100)])
    take = item.take.ptr
    assert api.RPR_GetMediaItemInfo_Value(item.ptr, "D_POSITION") == 2.0
    assert api.RPR_MIDI_GetProjTimeFromPPQPos(take, 3 * 960) == pytest.approx(3.5)
    sim.set_tempo([(0, 120), (2, 60), (5, 120)])  # items keep their quarter-note place (timebase beats)
    assert api.RPR_GetMediaItemInfo_Value(item.ptr, "D_POSITION") == pytest.approx(3.0)
    assert api.RPR_GetMediaItemInfo_Value(item.ptr, "D_LENGTH") == pytest.approx(2.5)
    assert api.RPR_MIDI_GetProjTimeFromPPQPos(take, 960) == pytest.approx(4.0)
    assert api.RPR_MIDI_GetProjTimeFromPPQPos(take, 3.5 * 960) == pytest.approx(5.25)


def test_envelopes_square_points_and_evaluate(sim):
    api = sim.module
    track = sim.add_track("T")
    fx = api.RPR_TrackFX_AddByName(track.ptr, "JS:ddsp/ddsp_expression.jsfx", False, -1)
    assert fx == 0 and api.RPR_TrackFX_GetNumParams(track.ptr, 0) == 8
    names = [api.RPR_TrackFX_GetParamName(track.ptr, 0, i, "", 64)[4] for i in range(6)]
    assert names == list(p.CONTROL_NAMES)  # parsed from the shipped JSFX
    assert api.RPR_TrackFX_GetFXName(track.ptr, 0, "", 256)[3].lower().startswith("js: ddsp expression")
    env = api.RPR_GetFXEnvelope(track.ptr, 0, 4, True)
    assert api.RPR_Envelope_Evaluate(env, 1.0, 16000, 1, 0.0, 0.0, 0.0, 0.0)[5] == 0.5  # no points: the slider
    for t, v in ((2.0, 0.8), (1.0, 0.2)):
        assert api.RPR_InsertEnvelopePoint(env, t, v, 1, 0.0, False, True) == (1, env, t, v, 1, 0.0, False, 1)
    api.RPR_Envelope_SortPoints(env)
    values = [api.RPR_Envelope_Evaluate(env, t, 16000, 1, 0.0, 0.0, 0.0, 0.0)[5] for t in (0.5, 1.0, 1.9, 2.0, 9)]
    assert values == [0.2, 0.2, 0.2, 0.8, 0.8]
    assert api.RPR_TrackFX_AddByName(track.ptr, "JS:ddsp/missing.jsfx", False, -1) == -1


def test_installer_layout_and_config(tmp_path):
    resource = tmp_path / "REAPER"
    scripts, jsfx, config = install_reaper_files(resource, "/venv/bin/python", port=9999)
    assert sorted(x.name for x in scripts.iterdir()) == sorted(
        [s.name for s in ACTIONS] + ["ddsp_reaper", "daw_bridge", "ddsp_config.json", "__init__.py"])
    assert sorted(x.name for x in (scripts / "ddsp_reaper").iterdir()) == [s.name for s in PACKAGE]
    assert all((scripts / "ddsp_reaper" / s.name).read_bytes() == s.read_bytes() for s in PACKAGE)
    assert sorted(x.name for x in (scripts / "daw_bridge").iterdir()) == ["__init__.py", "curves.py", "midi_expression.py",
                                                                    "osc.py", "protocol.py"]
    assert jsfx.read_text() == (ROOT / "daw_bridge" / "reaper" / "ddsp_expression.jsfx").read_text()
    stored = json.loads((scripts / "ddsp_config.json").read_text())
    assert stored["port"] == 9999 and stored["engine_command"][:3] == ["/venv/bin/python", "-m", "engine"]
    stored["debounce"] = 2.0  # a producer's own setting survives a re-install
    (scripts / "ddsp_config.json").write_text(json.dumps(stored))
    install_reaper_files(resource, None)
    stored = json.loads((scripts / "ddsp_config.json").read_text())
    assert stored["debounce"] == 2.0 and stored["engine_command"] is None and stored["port"] == 9718
    with pytest.raises(InstallError):
        install_reaper_files(resource, None, port=0)


def test_install_command_prints_the_manual_steps(tmp_path, capsys):
    from daw_bridge.cli import main

    assert main(["install", "reaper", "--resource-path", str(tmp_path / "R"), "--no-engine-command"]) == 0
    out = capsys.readouterr().out
    assert "Enable Python for use with ReaScript" in out and "Load ReaScript" in out
    assert (tmp_path / "R" / "Scripts" / "ddsp" / "DDSP - Render selected MIDI items.py").is_file()
    (tmp_path / "file").write_text("x")
    assert main(["install", "reaper", "--resource-path", str(tmp_path / "file")]) == 1
    assert "is not a folder" in capsys.readouterr().err


def test_action_without_selection_says_so(sim, tmp_path):
    scripts = Path(sim.resource_path) / "Scripts" / "ddsp"
    sim.add_track("T")
    sim.run_script(scripts / "DDSP - Render selected MIDI items.py")
    sim.run_until(timeout=5)
    assert "select one or more MIDI items first" in sim.console_text()
    sim.run_script(scripts / "DDSP - Choose preset for selected tracks.py")
    sim.run_until(timeout=5)
    assert "select the MIDI track(s)" in sim.console_text()
    assert not sim.errors and sim.running() == 0


# ---------------------------------------------------------------------------------------------------- the host model
# What independent checks of REAPER found, modelled here (docs/reaper.md, "The simulator")

def test_every_script_runs_in_one_main_namespace(sim, tmp_path):
    """REAPER has one Python interpreter and one __main__ for all ReaScripts: globals of one script are another's,
    deferred code runs there, and each instance keeps its own atexit code."""
    first, second = tmp_path / "first.py", tmp_path / "second.py"
    first.write_text("shared = 'first'\nRPR_atexit(\"log.append('first done')\")\nlog = []\n"
                     "def again():\n    log.append(shared)\nRPR_defer('again()')\n")
    second.write_text("shared = 'second'\nRPR_atexit(\"log.append('second done')\")\n")
    sim.run_script(first)
    assert sim.running() == 1
    sim.run_script(second)  # it ends at once: its atexit runs, and it overwrote the first one's global
    sim.run_until(timeout=5)
    assert sim.main["log"] == ["second done", "second", "first done"]


def test_task_control_when_a_running_script_is_run_again(sim, tmp_path):
    script = tmp_path / "loop.py"
    script.write_text("def loop():\n    RPR_defer('loop()')\nRPR_atexit(\"stopped.append(1)\")\nstopped = []\n"
                      "RPR_defer('loop()')\n")
    sim.run_script(script)
    sim.run_script(script)  # default answer: new instance
    assert sim.running() == 2 and sim.task_control_asked == ["loop.py"]
    sim.task_control = "abort"
    assert sim.run_script(script) is None and sim.running() == 2
    sim.task_control = "terminate instances"
    assert sim.run_script(script) is None and sim.running() == 0 and len(sim.main["stopped"]) == 2


def test_the_wrappers_string_buffers(sim):
    """Each char* argument is a 4 MiB buffer the wrapper zero-fills; a longer string raises ValueError."""
    api = sim.module
    item = sim.add_midi_item(sim.add_track("T"), 0, 4, [(0, 1, 60, 100)])
    before = sim.zeroed_bytes
    api.RPR_GetSetMediaItemInfo_String(item.ptr, "P_EXT:x", "small", True)
    api.RPR_GetMediaItemInfo_Value(item.ptr, "D_POSITION")  # no char*: no buffer
    api.RPR_GetExtState("s", "k")  # const char* in, const char* out: no buffer either
    assert sim.zeroed_bytes - before == 4 * 1024 * 1024 and sim.string_calls["GetSetMediaItemInfo_String"] == 1
    with pytest.raises(ValueError, match="byte string too long"):
        api.RPR_GetSetMediaItemInfo_String(item.ptr, "P_EXT:x", "x" * (4 * 1024 * 1024 + 1), True)
    assert item.ext["x"] == "small"


def test_pointers_of_another_project_tab(sim, tmp_path):
    """The wrapper validates pointers in the active project only; ValidatePtr2 with the item's project sees it."""
    api = sim.module
    first = sim.project
    item = sim.add_midi_item(sim.add_track("T"), 0, 4, [(0, 1, 60, 100)])
    project = api.RPR_EnumProjects(-1, "", 512)[0]
    assert project == first.ptr and api.RPR_GetMediaItemInfo_Value(item.ptr, "D_LENGTH") == 2.0
    other = sim.add_project(tmp_path / "other")
    assert api.RPR_EnumProjects(-1, "", 512)[0] == other.ptr and api.RPR_EnumProjects(0, "", 512)[0] == first.ptr
    assert api.RPR_GetMediaItemInfo_Value(item.ptr, "D_LENGTH") == 0.0  # passed on as NULL
    assert api.RPR_ValidatePtr2(0, item.ptr, "MediaItem*") == 0
    assert api.RPR_ValidatePtr2(project, item.ptr, "MediaItem*") == 1
    sim.switch_project(first)
    assert api.RPR_GetMediaItemInfo_Value(item.ptr, "D_LENGTH") == 2.0


def test_a_renamed_effect_keeps_its_ident(sim):
    api = sim.module
    track = sim.add_track("T")
    fx = api.RPR_TrackFX_AddByName(track.ptr, "JS:ddsp/ddsp_expression.jsfx", False, -1)
    sim.rename_fx(track, fx, "my lanes")
    assert api.RPR_TrackFX_GetFXName(track.ptr, fx, "", 256)[3] == "my lanes"
    assert api.RPR_TrackFX_GetNamedConfigParm(track.ptr, fx, "fx_ident", "", 1024) == \
        (1, track.ptr, 0, "fx_ident", "ddsp/ddsp_expression.jsfx", 1024)
    api.RPR_TrackList_AdjustWindows(False)
    assert sim.calls[-1] == "TrackList_AdjustWindows"
