-- The Ardour side of the DDSP bridge, shared by the editor action (ddsp_render.lua, in the GUI) and the headless
-- driver (ddsp_headless.lua, under ardour7-lua). Loaded with loadfile(); returns a table of functions.
--
-- One render of a MIDI region:
--   1. read its notes in seconds from the region start, through the tempo map (region_notes), and the pitch bend,
--      CC11, CC74 and channel pressure of its MIDI model (region_events), which become the notes' curves;
--   2. read the six lanes of the "DDSP Expression" plugin on its track at each note's start (lane_controls);
--   3. run the helper process (`python -m daw_bridge ardour-render`), which talks to the engine over OSC, since
--      Ardour's Lua can send UDP but not receive it; it prints the per-note controls and a raw float32 file;
--   4. bounce that audio onto the companion audio track "<track> DDSP" at the region's position, replacing the
--      previous render of the region (place_audio, replace_render): a tiny Lua DSP player on the companion track
--      plays the samples from shared memory while Ardour bounces, so the session gets its own bit-exact WAV;
--   5. write the engine's controls back as one automation point per note on the six lanes (write_lanes).
-- Needs Ardour 7's Lua (io.popen, loadfile: present unless "sandbox all Lua scripts" is on in newer versions).

local M = {}

M.EXPRESSION = "DDSP Expression"   -- the Lua DSP scripts' names (ardour { name = ... }), installed next to this
M.PLAYER = "DDSP Render Player"
M.SUFFIX = " DDSP"                 -- companion audio track: "<MIDI track name> DDSP"
M.CONTROLS = { "volume", "volume_fluctuation", "volume_peak_position", "vibrato", "brightness", "attack_noise" }
M.DEFAULTS = {
	python = "python3", pythonpath = "", host = "127.0.0.1", port = 9718, preset = "parametric", seed = 0,
	start_engine = false, timeout = 300,
}

-- ------------------------------------------------------------------------------------------------ small helpers

local function ticks (beats)
	-- Temporal.Beats -> integer ticks. 7.3's Lua binds no numeric accessor; its string is "beats:ticks".
	local b, t = beats:str ():match ("^(-?%d+):(-?%d+)$")
	return tonumber (b) * Temporal.ticks_per_beat + tonumber (t)
end
M.ticks = ticks

local function at_ticks (t) return Temporal.timepos_t.from_ticks (t) end

local function shell_quote (s)
	return "'" .. tostring (s):gsub ("'", "'\\''") .. "'"
end

local function split_tabs (line)
	local fields = {}
	for field in (line .. "\t"):gmatch ("([^\t]*)\t") do fields[#fields + 1] = field end
	return fields
end

function M.config (overrides, dir)
	-- DEFAULTS < <dir>/config.lua (written by `python -m daw_bridge install ardour`) < overrides
	local config = {}
	for k, v in pairs (M.DEFAULTS) do config[k] = v end
	if dir then
		local chunk = loadfile (dir .. "/config.lua")
		if chunk then
			for k, v in pairs (chunk ()) do config[k] = v end
		end
	end
	for k, v in pairs (overrides or {}) do
		if v ~= nil and v ~= "" then config[k] = v end
	end
	config.port = math.tointeger (tonumber (config.port)) or M.DEFAULTS.port
	config.seed = math.tointeger (tonumber (config.seed)) or 0
	config.timeout = tonumber (config.timeout) or M.DEFAULTS.timeout
	config.start_engine = config.start_engine == true or config.start_engine == "true" or config.start_engine == "1"
	return config
end

-- ------------------------------------------------------------------------------------------------ regions, notes

function M.track_of (region)
	-- the track whose playlist holds the region
	local id = region:to_stateful ():id ()
	local tracks = Session:get_tracks ()
	for route in tracks:iter () do
		local track = route:to_track ()
		if not track:isnil () and not track:playlist ():region_by_id (id):isnil () then
			return track
		end
	end
	return nil
end

function M.clip_id (region)
	-- stable per region and session (docs/protocol.md: clip ids are global to the engine)
	return "ardour:" .. Session:name () .. ":" .. region:to_stateful ():id ():to_s ()
end

function M.region_span (region)
	-- {pos (samples), len (samples), t0, t1 (absolute ticks of the region's start and end)}
	local tm = Temporal.TempoMap.read ()
	local pos = region:position ()
	local len = region:length ():samples ()
	return {
		pos = pos:samples (), len = len,
		t0 = ticks (tm:quarters_at (pos)),
		t1 = ticks (tm:quarters_at (Temporal.timepos_t (pos:samples () + len))),
	}
end

function M.region_notes (region, span)
	-- The region's notes, sorted by onset then pitch: {id, pitch, velocity, onset, offset (seconds from the region
	-- start, through the tempo map, sample-exact), abs (absolute ticks of the onset)}. Notes outside the region
	-- (a trimmed region) are left out; a note running past the region end is cut there.
	local sr = Session:nominal_sample_rate ()
	local src0 = region:start ():ticks () -- where the region starts in its source, in ticks
	local notes = {}
	for note in ARDOUR.LuaAPI.note_list (region:to_midiregion ():model ()):iter () do
		local on = span.t0 + ticks (note:time ()) - src0
		local off = math.min (on + ticks (note:length ()), span.t1)
		if on >= span.t0 and on < span.t1 and off > on then
			notes[#notes + 1] = {
				pitch = note:note (), velocity = note:velocity (), abs = on, channel = note:channel (),
				onset = (at_ticks (on):samples () - span.pos) / sr,
				offset = (at_ticks (off):samples () - span.pos) / sr,
			}
		end
	end
	table.sort (notes, function (a, b) return a.abs < b.abs or (a.abs == b.abs and a.pitch < b.pitch) end)
	local seen = {}
	for _, n in ipairs (notes) do
		-- ids from the content: the same notes keep the same ids, so an edit of lanes re-renders incrementally
		local id = string.format ("p%d@%d", n.pitch, n.abs - span.t0)
		if seen[id] then
			seen[id] = seen[id] + 1
			id = id .. "#" .. seen[id]
		else
			seen[id] = 1
		end
		n.id = id
	end
	return notes
end

-- ------------------------------------------------------------------------------------------------ expression lanes

function M.expression_plugin (route, create)
	-- the route's "DDSP Expression" plugin; added first in the chain (before the instrument) when `create`
	for i = 0, 63 do
		local proc = route:nth_plugin (i)
		if proc:isnil () then break end
		local insert = proc:to_insert ()
		if not insert:isnil () and insert:plugin (0):name () == M.EXPRESSION then
			return proc
		end
	end
	if not create then return nil end
	local proc = ARDOUR.LuaAPI.new_luaproc (Session, M.EXPRESSION)
	if proc:isnil () then
		error ("the '" .. M.EXPRESSION .. "' Lua DSP script is not installed (python -m daw_bridge install ardour)", 0)
	end
	if route:add_processor_by_index (proc, 0, nil, true) ~= 0 then
		error ("could not add the '" .. M.EXPRESSION .. "' plugin to track " .. route:name (), 0)
	end
	return proc
end

local function lanes (proc)
	local out = {}
	for k = 1, #M.CONTROLS do
		local al, cl = ARDOUR.LuaAPI.plugin_automation (proc, k - 1)
		local ac = proc:to_insert ():to_automatable ():automation_control (
			Evoral.Parameter (ARDOUR.AutomationType.PluginAutomation, 0, k - 1), false)
		out[k] = { al = al, cl = cl, ac = ac }
	end
	return out
end

function M.lane_controls (proc, notes, span)
	-- Each note gets the lanes' values at its start when every lane has a point inside the region at or before
	-- that start (the lanes step: one value per note); otherwise nil, and the engine's expression generator
	-- chooses. Returns how many notes took their controls from the lanes.
	local all = lanes (proc)
	local first = {}
	for k, lane in ipairs (all) do
		for e in lane.cl:events ():iter () do
			local t = e.when:ticks ()
			if t >= span.t0 and t < span.t1 and (first[k] == nil or t < first[k]) then first[k] = t end
		end
	end
	local taken = 0
	for _, n in ipairs (notes) do
		local values = {}
		for k, lane in ipairs (all) do
			if first[k] == nil or first[k] > n.abs then values = nil break end
			values[k] = math.min (1, math.max (0, lane.cl:eval (at_ticks (n.abs))))
		end
		n.controls = values
		if values then taken = taken + 1 end
	end
	return taken
end

function M.write_lanes (proc, notes, controls, span)
	-- Replace every point inside the region with one point per note start holding the engine's control (notes
	-- sharing a start share a point: the first note's value, which is every one of them, since the engine gives
	-- a chord's notes the same controls). Points outside the region are kept. Undoable.
	for k, lane in ipairs (lanes (proc)) do
		local before = lane.al:get_state ()
		local points, taken = {}, {}
		for e in lane.cl:events ():iter () do
			local t = e.when:ticks ()
			if t < span.t0 or t >= span.t1 then points[#points + 1] = { t, e.value } end
		end
		for _, n in ipairs (notes) do
			local c = controls[n.id]
			if c and not taken[n.abs] then
				taken[n.abs] = true
				points[#points + 1] = { n.abs, c[k] }
			end
		end
		table.sort (points, function (a, b) return a[1] < b[1] end)
		lane.cl:clear_list ()
		lane.cl:set_interpolation (Evoral.InterpolationStyle.Discrete)
		for i, p in ipairs (points) do
			-- add() moves the last point instead of adding one when three in a row hold the same value, and
			-- editor_add() puts an extra "anchor" point at 0 into an empty list: add() the first point to the
			-- empty list, editor_add() the rest (no guard points, no merging)
			if i == 1 then
				lane.cl:add (at_ticks (p[1]), p[2], false, false)
			else
				lane.cl:editor_add (at_ticks (p[1]), p[2], false)
			end
		end
		lane.ac:set_automation_state (ARDOUR.AutoState.Play)
		Session:add_command (lane.al:memento_command (before, lane.al:get_state ()))
	end
end

-- The controller data that shapes notes (daw_bridge/midi_expression.py): kind, Ardour's parameter type, number
M.CURVE_SOURCES = {
	{ "bend", ARDOUR.AutomationType.MidiPitchBenderAutomation, 0 },
	{ "cc", ARDOUR.AutomationType.MidiCCAutomation, 11 },
	{ "cc", ARDOUR.AutomationType.MidiCCAutomation, 74 },
	{ "pressure", ARDOUR.AutomationType.MidiChannelPressureAutomation, 0 },
}

function M.region_events (region, span)
	-- The region's pitch bend, CC11, CC74 and channel pressure on every channel (its MIDI model's controller
	-- lists): {kind, channel, number, time (s from the region start; a point before the start counts as the state
	-- there), value (raw: bend -8192..8191, others 0..127), ramp (1: the line to the next point is interpolated)}.
	-- Points at or after the region end are left out.
	local sr = Session:nominal_sample_rate ()
	local src0 = region:start ():ticks ()
	local model = region:to_midiregion ():model ()
	local events = {}
	for channel = 0, 15 do
		for _, source in ipairs (M.CURVE_SOURCES) do
			local control = model:automation_control (Evoral.Parameter (source[2], channel, source[3]), false)
			if not control:isnil () then
				local list = control:alist ()
				local ramp = list:interpolation () == Evoral.InterpolationStyle.Discrete and 0 or 1
				for e in list:events ():iter () do
					local at = span.t0 + e.when:ticks () - src0
					if at < span.t1 then
						local value = math.floor (e.value + 0.5)
						if source[1] == "bend" then value = value - 8192 end
						local time = at >= span.t0 and (at_ticks (at):samples () - span.pos) / sr
							or -(at_ticks (2 * span.t0 - at):samples () - span.pos) / sr
						events[#events + 1] = { kind = source[1], channel = channel, number = source[3],
							time = time, value = value, ramp = ramp }
					end
				end
			end
		end
	end
	return events
end

-- ------------------------------------------------------------------------------------------------ the engine

function M.request_text (config, region, notes, span, events)
	local sr = Session:nominal_sample_rate ()
	local lines = {
		"ddsp-ardour-request\t1",
		"clip\t" .. M.clip_id (region),
		"preset\t" .. config.preset,
		"sample_rate\t" .. sr,
		"samples\t" .. span.len,
		"seed\t" .. config.seed,
	}
	for _, n in ipairs (notes) do
		local c = n.controls or { -1, -1, -1, -1, -1, -1 }
		lines[#lines + 1] = string.format ("note\t%s\t%d\t%.17g\t%.17g\t%d\t%.9g\t%.9g\t%.9g\t%.9g\t%.9g\t%.9g\t%d",
			n.id, n.pitch, n.onset, n.offset, n.velocity, c[1], c[2], c[3], c[4], c[5], c[6], n.channel or 0)
	end
	for _, e in ipairs (events or {}) do
		lines[#lines + 1] = string.format ("event\t%s\t%d\t%d\t%.17g\t%d\t%d", e.kind, e.channel, e.number,
			e.time, e.value, e.ramp)
	end
	return table.concat (lines, "\n") .. "\n"
end

function M.parse_reply (text)
	-- The helper's stdout: "ok", "audio", "control", "warning" or "error" lines (tab-separated); anything else is
	-- log text (stderr is merged in).
	local reply = { controls = {}, warnings = {}, log = {} }
	for line in text:gmatch ("[^\n]+") do
		local f = split_tabs (line)
		if f[1] == "ok" and #f == 4 then
			reply.ok, reply.mode, reply.rerendered, reply.render_seconds = true, f[2], tonumber (f[3]), tonumber (f[4])
		elseif f[1] == "audio" and #f == 4 then
			reply.audio, reply.samples, reply.path = f[2], math.tointeger (tonumber (f[3])), f[4]
		elseif f[1] == "control" and #f == 8 then
			reply.controls[f[2]] = { tonumber (f[3]), tonumber (f[4]), tonumber (f[5]), tonumber (f[6]),
				tonumber (f[7]), tonumber (f[8]) }
		elseif f[1] == "warning" then
			reply.warnings[#reply.warnings + 1] = f[2]
		elseif f[1] == "error" and #f >= 3 then
			reply.error = f[2] .. ": " .. f[3]
		else
			reply.log[#reply.log + 1] = line
		end
	end
	if not reply.ok and not reply.error then
		reply.error = "the helper gave no answer: " .. table.concat (reply.log, " | ")
	end
	return reply
end

function M.call_helper (config, request)
	local req = os.tmpname ()
	local raw = req .. ".f32"
	local f = assert (io.open (req, "w"))
	f:write (request)
	f:close ()
	local cmd = string.format ("%s%s -m daw_bridge ardour-render %s %s --host %s --port %d --timeout %g%s 2>&1",
		config.pythonpath ~= "" and ("PYTHONPATH=" .. shell_quote (config.pythonpath) .. " ") or "",
		shell_quote (config.python), shell_quote (req), shell_quote (raw), shell_quote (config.host), config.port,
		config.timeout, config.start_engine and " --start-engine" or "")
	local pipe = assert (io.popen (cmd, "r"))
	local text = pipe:read ("a")
	pipe:close ()
	os.remove (req)
	local reply = M.parse_reply (text)
	reply.raw = raw
	return reply
end

-- ------------------------------------------------------------------------------------------------ audio

function M.companion_track (route, create)
	local name = route:name () .. M.SUFFIX
	local found = Session:route_by_name (name)
	if not found:isnil () then return found:to_track () end
	if not create then return nil end
	local order = route:presentation_info_ptr ():order () + 1
	local list = Session:new_audio_track (1, 2, nil, 1, name, order, ARDOUR.TrackMode.Normal, true)
	for t in list:iter () do return t:to_track () end
	error ("could not create the audio track " .. name, 0)
end

local function read_raw (path, n, into)
	-- raw little-endian float32 file -> C float array (1-based), n samples
	local f = assert (io.open (path, "rb"))
	local data = f:read ("a")
	f:close ()
	if #data ~= 4 * n then error (string.format ("%s holds %d bytes, expected %d", path, #data, 4 * n), 0) end
	local block = 256
	local fmt = "<" .. string.rep ("f", block)
	local pos, i = 1, 0
	while i + block <= n do
		local v = { string.unpack (fmt, data, pos) }
		for j = 1, block do into[i + j] = v[j] end
		pos, i = v[block + 1], i + block
	end
	while i < n do
		into[i + 1], pos = string.unpack ("<f", data, pos)
		i = i + 1
	end
end

function M.place_audio (track, raw, n, position, name)
	-- Bounce n samples of `raw` into a new region of `track` (not yet on its playlist). The player plugin is
	-- added first in the chain of the deactivated track (so the realtime thread never runs it), fed through its
	-- shared memory, used as the bounce end point, and removed again.
	if Session:transport_rolling () then error ("stop the transport first", 0) end
	local player = ARDOUR.LuaAPI.new_luaproc (Session, M.PLAYER)
	if player:isnil () then
		error ("the '" .. M.PLAYER .. "' Lua DSP script is not installed (python -m daw_bridge install ardour)", 0)
	end
	track:set_active (false, nil)
	ARDOUR.LuaAPI.wait_for_process_callback (2, 1000)
	local ok, result = pcall (function ()
		if track:add_processor_by_index (player, 0, nil, true) ~= 0 then error ("could not add the player", 0) end
		local shm = player:to_insert ():plugin (0):to_luaproc ():shmem ()
		shm:allocate (3 + n)
		shm:clear ()
		read_raw (raw, n, shm:to_float (3):array ())
		shm:atomic_set_int (1, 0) -- read position
		shm:atomic_set_int (2, n) -- length
		shm:atomic_set_int (0, 1) -- armed
		local region = track:bounce_range (position, position + n, ARDOUR.InterThreadInfo (), player, true, name)
		local played = shm:atomic_get_int (1)
		shm:atomic_set_int (0, 0)
		if region:isnil () then error ("the bounce failed", 0) end
		if played < n then error (string.format ("the player played %d of %d samples", played, n), 0) end
		return region
	end)
	track:remove_processor (player, nil, true)
	track:set_active (true, nil)
	if not ok then error (result, 0) end
	return result
end

function M.render_name (region)
	return region:name ():gsub ("[^%w%-_ ]", "_") .. ".ddsp-" .. region:to_stateful ():id ():to_s ()
end

function M.replace_render (track, midi_region, new_region, position)
	-- remove earlier renders of this MIDI region (named "...ddsp-<region id>", wherever they were), add the new one
	local playlist = track:playlist ()
	local id = midi_region:to_stateful ():id ():to_s ()
	playlist:to_stateful ():clear_changes ()
	local old = {}
	local regions = playlist:region_list ()
	for r in regions:iter () do
		local tag = r:name ():match ("%.ddsp%-(%d+)")
		if tag == id then old[#old + 1] = r end
	end
	for _, r in ipairs (old) do playlist:remove_region (r) end
	playlist:add_region (new_region, Temporal.timepos_t (position), 1, false, 0, 0, false)
	Session:add_stateful_diff_command (playlist:to_statefuldestructible ())
	return #old
end

-- ------------------------------------------------------------------------------------------------ one region

function M.render_region (config, region)
	-- Returns a summary table {name, notes, from_lanes, mode, rerendered, replaced, warnings}; raises on error.
	local midi = region:to_midiregion ()
	if midi:isnil () then error (region:name () .. " is not a MIDI region", 0) end
	local track = M.track_of (region)
	if not track then error (region:name () .. " is on no track", 0) end
	local span = M.region_span (region)
	local notes = M.region_notes (region, span)
	if #notes == 0 then error (region:name () .. " holds no notes", 0) end
	local proc = M.expression_plugin (track, true)
	local from_lanes = M.lane_controls (proc, notes, span)

	local reply = M.call_helper (config, M.request_text (config, region, notes, span, M.region_events (region, span)))
	if reply.error then
		os.remove (reply.raw)
		error (region:name () .. ": " .. reply.error, 0)
	end
	local audio_track = M.companion_track (track, true)
	local ok, new_region = pcall (M.place_audio, audio_track, reply.audio, reply.samples, span.pos, M.render_name (region))
	os.remove (reply.audio)
	if not ok then error (region:name () .. ": " .. new_region, 0) end

	Session:begin_reversible_command ("DDSP render")
	local replaced = M.replace_render (audio_track, region, new_region, span.pos)
	M.write_lanes (proc, notes, reply.controls, span)
	Session:commit_reversible_command (nil)
	return {
		name = region:name (), notes = #notes, from_lanes = from_lanes, mode = reply.mode,
		rerendered = reply.rerendered, replaced = replaced, warnings = reply.warnings,
		path = reply.path, position = span.pos, samples = span.len,
	}
end

function M.summary_line (s)
	return string.format ("%s: %d notes (%d from the lanes), %s render of %d, replaced %d earlier render(s)",
		s.name, s.notes, s.from_lanes, s.mode, s.rerendered, s.replaced)
end

return M
