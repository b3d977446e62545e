// The model's tests (issue 4) live in this target; this file keeps the target present in a fresh clone until they land.
