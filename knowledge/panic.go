package knowledge

import (
	"errors"
	"runtime/debug"
	"strings"

	"github.com/tandem-chat/tandem/internal/errs"
)

// Parsers recover from panics so that a bad file costs one upload, not the
// process; the PDF library, for one, panics on damaged files by design.
// panicHook, set by tests (SetPanicHook in export_test.go), hears of each
// recovered panic whose cause is in Tandem's own code, so that the fuzz
// tests still see our bugs.
var panicHook func(r any, stack string)

// recovered reports a recovered panic to the hook when it arose in our code.
func recovered(r any) {
	h := panicHook
	if h == nil {
		return
	}
	var coded *errs.Error
	if e, ok := r.(error); ok && (errors.Is(e, errPDFBudget) || errors.As(e, &coded)) {
		return // thrown on purpose: over the work budget, or a damaged page
	}
	stack := string(debug.Stack())
	if ours(stack) {
		h(r, stack)
	}
}

// ours reports whether the function that panicked (the first frame after
// panic( that is not the runtime's) belongs to this module.
func ours(stack string) bool {
	lines := strings.Split(stack, "\n")
	for i, l := range lines {
		if !strings.HasPrefix(l, "panic(") {
			continue
		}
		for _, f := range lines[i+1:] {
			if strings.HasPrefix(f, "\t") || strings.HasPrefix(f, "runtime.") || f == "" {
				continue
			}
			return strings.HasPrefix(f, "github.com/tandem-chat/tandem/")
		}
	}
	return false
}
