package master

import (
	"errors"
	"fmt"

	"github.com/replog/replog/pkg/protocol"
)

// ErrNotOneChange: a membership change must add, remove, promote or demote
// exactly one member (Raft thesis §4.1: one server at a time keeps every
// majority of the old configuration overlapping every majority of the new).
var ErrNotOneChange = errors.New("master: a membership change must change exactly one member")

// CheckChange validates that next differs from cur in exactly one member:
// one added, one removed, or one whose addresses or voter flag changed. It
// returns the id of that member.
func CheckChange(cur, next protocol.Config) (string, error) {
	changed := []string{}
	for _, m := range next.Members {
		old, ok := cur.Member(m.ID)
		if !ok || old != m {
			changed = append(changed, m.ID)
		}
	}
	for _, m := range cur.Members {
		if _, ok := next.Member(m.ID); !ok {
			changed = append(changed, m.ID)
		}
	}
	if len(changed) != 1 {
		return "", fmt.Errorf("%w (changes %v)", ErrNotOneChange, changed)
	}
	if len(next.Voters()) == 0 {
		return "", errors.New("master: a cluster needs at least one voter")
	}
	return changed[0], nil
}
