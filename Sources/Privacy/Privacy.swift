// Differential-privacy mechanisms: exact discrete samplers and their calibration.
