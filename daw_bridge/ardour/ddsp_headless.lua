-- Render MIDI regions of a saved Ardour session without the GUI, with the same code as the editor action:
--
--   ardour7-lua ddsp_headless.lua SESSION_DIR [key=value ...]
--
-- keys: snapshot (default: the folder's name), dir (the folder holding ddsp_lib.lua and config.lua; default the
-- installed one), regions (comma-separated region names; default every MIDI region of every track), rate (sample
-- rate of the Dummy backend, default 48000), and any config key (python, pythonpath, host, port, preset, seed,
-- start_engine, timeout). Prints one "rendered\t..." line per region (or "failed\t<region>\t<why>"), saves the
-- session and exits non-zero when a region failed.

local args = {}
local session_dir = arg and arg[1]
for i = 2, (arg and #arg or 0) do
	local k, v = arg[i]:match ("^([%w_]+)=(.*)$")
	if not k then print ("error\tbad argument " .. arg[i]) os.exit (2) end
	args[k] = v
end
if not session_dir then
	print ("usage: ardour7-lua ddsp_headless.lua SESSION_DIR [key=value ...]")
	os.exit (2)
end
session_dir = session_dir:gsub ("/+$", "")
local snapshot = args.snapshot or session_dir:match ("([^/]+)$")

local dir = args.dir
if not dir then
	local base = os.getenv ("XDG_CONFIG_HOME") or ((os.getenv ("HOME") or "") .. "/.config")
	dir = base .. "/ardour7/scripts/ddsp"
end
local DDSP = assert (loadfile (dir .. "/ddsp_lib.lua"), "no ddsp_lib.lua in " .. dir) ()
local config = DDSP.config (args, dir)

local backend = AudioEngine:set_backend ("None (Dummy)", "", "")
if args.rate then backend:set_sample_rate (tonumber (args.rate)) end
local s = load_session (session_dir, snapshot)
if not s then
	print ("error\tcannot load session " .. session_dir .. " (" .. snapshot .. ")")
	os.exit (1)
end

local wanted
if args.regions then
	wanted = {}
	for name in args.regions:gmatch ("[^,]+") do wanted[name] = true end
end
local chosen = {}
local tracks = Session:get_tracks ()
for route in tracks:iter () do
	local track = route:to_track ()
	if not track:isnil () and not track:to_midi_track ():isnil () then
		local regions = track:playlist ():region_list ()
		for r in regions:iter () do
			if not r:to_midiregion ():isnil () and (not wanted or wanted[r:name ()]) then chosen[#chosen + 1] = r end
		end
	end
end

local failures = 0
for _, r in ipairs (chosen) do
	local ok, result = pcall (DDSP.render_region, config, r)
	if ok then
		print (string.format ("rendered\t%s\t%d\t%d\t%s\t%d\t%d\t%d\t%d\t%s", result.name, result.notes, result.from_lanes,
			result.mode, result.rerendered, result.replaced, result.position, result.samples, result.path))
		for _, w in ipairs (result.warnings) do print ("warning\t" .. result.name .. "\t" .. w) end
	else
		failures = failures + 1
		print ("failed\t" .. r:name () .. "\t" .. tostring (result):gsub ("\n", " "))
	end
end
if #chosen == 0 then print ("error\tno MIDI regions to render") failures = 1 end

Session:save_state ("", false, false, false, false, false)
close_session ()
if failures > 0 then os.exit (1) end
