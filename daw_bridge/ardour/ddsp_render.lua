ardour {
	["type"]    = "EditorAction",
	name        = "DDSP Render MIDI Regions",
	license     = "Apache-2.0",
	author      = "daw-ddsp",
	description = "Render the selected MIDI regions with the DDSP engine (python -m engine serve). The audio lands "
		.. "on the audio track '<track> DDSP' at each region's position, replacing the previous render; the six "
		.. "note-expression controls land as automation on the 'DDSP Expression' plugin of the MIDI track. Edit a "
		.. "lane and run this again to re-render the notes you changed."
}

function action_params ()
	return {
		["preset"] = { title = "Engine preset (empty: the installed default)", default = "", optional = true },
		["seed"]   = { title = "Noise seed (empty: the installed default)", default = "", optional = true },
	}
end

function factory (params) return function ()
	-- Written by `python -m daw_bridge install ardour`: the folder holding ddsp_lib.lua and config.lua.
	local DDSP_DIR = nil -- @DDSP_DIR@

	if not DDSP_DIR then
		-- not installed by the installer: look in the user's Ardour scripts folders
		local base = os.getenv ("XDG_CONFIG_HOME") or ((os.getenv ("HOME") or "") .. "/.config")
		for _, v in ipairs ({ "ardour9", "ardour8", "ardour7" }) do
			local dir = base .. "/" .. v .. "/scripts/ddsp"
			if ARDOUR.LuaAPI.file_test (dir .. "/ddsp_lib.lua", ARDOUR.LuaAPI.FileTest.Exists) then
				DDSP_DIR = dir
				break
			end
		end
	end
	local function message (text, level)
		print (text)
		if LuaDialog then
			local kind = ({ error = LuaDialog.MessageType.Error, warning = LuaDialog.MessageType.Warning })[level]
			LuaDialog.Message ("DDSP render", text, kind or LuaDialog.MessageType.Info, LuaDialog.ButtonType.Close):run ()
		end
	end
	local lib = DDSP_DIR and loadfile (DDSP_DIR .. "/ddsp_lib.lua")
	if not lib then
		message ("ddsp_lib.lua not found: run `python -m daw_bridge install ardour`", "error")
		return
	end
	local DDSP = lib ()
	local p = params or {}
	local config = DDSP.config ({ preset = p["preset"], seed = p["seed"] }, DDSP_DIR)

	local regions = {}
	for r in Editor:get_selection ().regions:regionlist ():iter () do
		if not r:to_midiregion ():isnil () then regions[#regions + 1] = r end
	end
	if #regions == 0 then
		message ("Select one or more MIDI regions first.", "warning")
		return
	end

	local report, failed = {}, false
	for _, r in ipairs (regions) do
		local ok, result = pcall (DDSP.render_region, config, r)
		if ok then
			report[#report + 1] = DDSP.summary_line (result)
			for _, w in ipairs (result.warnings) do report[#report + 1] = "  note: " .. w end
		else
			failed = true
			report[#report + 1] = "failed: " .. tostring (result)
		end
	end
	message (table.concat (report, "\n"), failed and "error" or "info")
end end
