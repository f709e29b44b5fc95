ardour {
	["type"]    = "dsp",
	name        = "DDSP Render Player",
	category    = "Utility",
	license     = "Apache-2.0",
	author      = "daw-ddsp",
	description = "Plays the samples the DDSP render action hands over in shared memory while Ardour bounces them "
		.. "into a region of the companion audio track. Added and removed by the action: not for use by hand."
}

-- Shared memory: int 0 armed (1) or not, int 1 read position, int 2 length, floats from 3 on the samples.
-- Silent unless armed; every armed call plays the next n_samples and advances the read position.

function dsp_ioconfig () return { { audio_in = 1, audio_out = 1 } } end

function dsp_init (rate)
	self:shmem ():allocate (3)
	self:shmem ():clear ()
end

function dsp_run (ins, outs, n_samples)
	local shm = self:shmem ()
	local out = outs[1]
	if shm:atomic_get_int (0) ~= 1 then
		ARDOUR.DSP.memset (out, 0, n_samples)
		return
	end
	local pos, len = shm:atomic_get_int (1), shm:atomic_get_int (2)
	local n = math.max (0, math.min (n_samples, len - pos))
	if n > 0 then ARDOUR.DSP.copy_vector (out, shm:to_float (3 + pos), n) end
	if n < n_samples then ARDOUR.DSP.memset (out:offset (n), 0, n_samples - n) end
	shm:atomic_set_int (1, pos + n_samples)
end
