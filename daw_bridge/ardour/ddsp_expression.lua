ardour {
	["type"]    = "dsp",
	name        = "DDSP Expression",
	category    = "Utility",
	license     = "Apache-2.0",
	author      = "daw-ddsp",
	description = "The six note-expression controls of the DDSP engine as automatable parameters, one value per "
		.. "note (0..1). The render action writes the engine's choice here; edit a lane and render again to change "
		.. "that note. Passes MIDI and audio through untouched."
}

function dsp_ioconfig ()
	return { { midi_in = 1, midi_out = 1, audio_in = -1, audio_out = -1 } }
end

function dsp_params ()
	return {
		{ ["type"] = "input", name = "Volume", min = 0, max = 1, default = 0.5,
			doc = "mean loudness of the note" },
		{ ["type"] = "input", name = "Volume fluctuation", min = 0, max = 1, default = 0.5,
			doc = "how much the loudness moves within the note" },
		{ ["type"] = "input", name = "Volume peak position", min = 0, max = 1, default = 0.5,
			doc = "where the loudest moment falls, 0 start .. 1 end" },
		{ ["type"] = "input", name = "Vibrato", min = 0, max = 1, default = 0.5,
			doc = "vibrato extent" },
		{ ["type"] = "input", name = "Brightness", min = 0, max = 1, default = 0.5,
			doc = "weight of the upper harmonics" },
		{ ["type"] = "input", name = "Attack noise", min = 0, max = 1, default = 0.5,
			doc = "breath or bow noise at the start of the note" },
	}
end

function dsp_configure (ins, outs)
	n_out = outs
end

function dsp_runmap (bufs, in_map, out_map, n_samples, offset)
	ARDOUR.DSP.process_map (bufs, n_out, in_map, out_map, n_samples, offset)
end
