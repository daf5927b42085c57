package linearize

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/anishathalye/porcupine"
)

// Check runs porcupine on history with the log model. A timeout of 0 means
// none; with one, the result may be porcupine.Unknown, which is
// inconclusive (no violation found in time), not a pass.
func Check(history []porcupine.Operation, timeout time.Duration) (porcupine.CheckResult, porcupine.LinearizationInfo) {
	return porcupine.CheckOperationsVerbose(ModelFor(history), history, timeout)
}

// Visualize writes porcupine's HTML visualization of a checked history to
// path (creating its directory).
func Visualize(path string, history []porcupine.Operation, info porcupine.LinearizationInfo) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("linearize: visualization: %w", err)
	}
	if err := porcupine.VisualizePath(ModelFor(history), info, path); err != nil {
		return fmt.Errorf("linearize: visualization: %w", err)
	}
	return nil
}

// Resolve settles every append of unknown outcome against final, the
// converged log read after the run (final[i] is the message at id i+1): an
// append whose message is in final at the id it was given (or anywhere, if
// it was given none) becomes a definite append at that id, still with
// Return = MaxInt64 since it may have taken effect at any time after its
// call; an append whose message is not in final is dropped (it never took
// effect for good, so no linearizable read may have shown it).
//
// The verdict on the resolved history is the one the full nondeterministic
// check reaches when the final read is part of the history, found without
// forking on every unknown append; so it is what long histories are checked
// with when the full check runs out of time.
func Resolve(history []porcupine.Operation, final []string) []porcupine.Operation {
	at := make(map[string]int, len(final))
	for i, m := range final {
		if _, dup := at[m]; !dup {
			at[m] = i + 1
		}
	}
	out := make([]porcupine.Operation, 0, len(history))
	for _, op := range history {
		in, _ := op.Input.(Input)
		o, _ := op.Output.(Output)
		if in.Op != Append || !o.Unknown {
			out = append(out, op)
			continue
		}
		id, ok := at[in.Msg]
		if !ok || (o.ID != 0 && o.ID != id) {
			continue
		}
		op.Output = Output{ID: id}
		out = append(out, op)
	}
	return out
}
