package knowledge

// SetPanicHook sets the hook that hears of panics the parsers recovered
// from in Tandem's own code (see panic.go).
func SetPanicHook(h func(r any, stack string)) { panicHook = h }
