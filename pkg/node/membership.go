package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/replog/replog/master"
	"github.com/replog/replog/pkg/api"
	"github.com/replog/replog/pkg/client"
	"github.com/replog/replog/pkg/config"
	"github.com/replog/replog/pkg/protocol"
	"github.com/replog/replog/pkg/replica"
)

// This file implements api.Membership and the PEERS join at start.

var _ api.Membership = (*Node)(nil)

// confChange is a membership change on its way into the loop: fn computes
// the next membership from the current one (nil error and the same
// membership: nothing to do).
type confChange struct {
	fn       func(cur protocol.Config) (protocol.Config, error)
	force    []string // ForceReconfigure instead of a normal change
	accepted chan acceptance
}

// errNoChange: the membership already is what was asked.
var errNoChange = errors.New("node: nothing to change")

// Join implements api.Membership.
func (n *Node) Join(ctx context.Context, p api.Peer) error {
	return n.changeMembership(ctx, func(cur protocol.Config) (protocol.Config, error) {
		next := protocol.Config{Members: append([]protocol.Member(nil), cur.Members...)}
		for i, m := range next.Members {
			if m.ID == p.ID {
				if m.GRPC == p.GRPC && m.HTTP == p.HTTP {
					return cur, errNoChange
				}
				next.Members[i].GRPC, next.Members[i].HTTP = p.GRPC, p.HTTP
				return next, nil
			}
		}
		next.Members = append(next.Members, protocol.Member{ID: p.ID, GRPC: p.GRPC, HTTP: p.HTTP})
		return next, nil
	})
}

// RemoveMember implements api.Membership.
func (n *Node) RemoveMember(ctx context.Context, id string) error {
	return n.changeMembership(ctx, func(cur protocol.Config) (protocol.Config, error) {
		if _, ok := cur.Member(id); !ok {
			return cur, &api.BadRequestError{Field: "id", Msg: fmt.Sprintf("%q is not a member", id)}
		}
		var next protocol.Config
		for _, m := range cur.Members {
			if m.ID != id {
				next.Members = append(next.Members, m)
			}
		}
		return next, nil
	})
}

// changeMembership runs a change on the master and waits for its commit.
// While another change (a learner's promotion, say) is still in flight it
// retries for a few election timeouts.
func (n *Node) changeMembership(ctx context.Context, fn func(protocol.Config) (protocol.Config, error)) error {
	deadline := time.Now().Add(10 * n.cfg.ElectionTimeoutMax)
	for {
		if err := n.awaitLeadership(ctx, time.Now().Add(2*n.cfg.ElectionTimeoutMax)); err != nil {
			return err
		}
		c := &confChange{fn: fn, accepted: make(chan acceptance, 1)}
		select {
		case n.confc <- c:
		case <-ctx.Done():
			return ctx.Err()
		case <-n.stopc:
			return api.ErrNoLeader
		}
		acc := <-c.accepted
		switch {
		case errors.Is(acc.err, errNoChange):
			return nil
		case errors.Is(acc.err, replica.ErrChangePending), errors.Is(acc.err, replica.ErrNotLeader), errors.Is(acc.err, replica.ErrTransferring):
			if time.Now().After(deadline) {
				return &api.ConflictError{Code: "change_pending", Msg: "another membership change is still in progress; retry shortly"}
			}
			select {
			case <-time.After(20 * time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			}
			continue
		case errors.Is(acc.err, replica.ErrNoLiveMajority):
			return &api.ConflictError{Code: "no_live_majority", Msg: "refused: after this change the voters that answer now would not be a majority, and the cluster would stop taking writes"}
		case errors.Is(acc.err, master.ErrNotOneChange):
			return &api.BadRequestError{Field: "members", Msg: acc.err.Error()}
		case acc.err != nil:
			return acc.err
		}
		select {
		case out := <-acc.w.done:
			return out.err
		case <-ctx.Done():
			n.cancel(acc.w)
			return ctx.Err()
		}
	}
}

// ForceReconfigure implements api.Membership: refused while any master is
// known or one was seen within two election timeouts (a majority is then
// probably reachable and must be used instead).
func (n *Node) ForceReconfigure(ctx context.Context, keep []string) error {
	if len(keep) == 0 {
		keep = []string{n.id}
	}
	v := n.view.Load()
	if v.leader != protocol.None || time.Since(time.Unix(0, n.leaderSeen.Load())) < 2*n.cfg.ElectionTimeoutMax {
		return &api.ConflictError{Code: "majority_reachable", Msg: fmt.Sprintf(
			"refused: a master (%q) was seen within the last %v, so a majority is reachable; use DELETE /cluster/members/{id} instead",
			v.leader, 2*n.cfg.ElectionTimeoutMax)}
	}
	c := &confChange{force: keep, accepted: make(chan acceptance, 1)}
	select {
	case n.confc <- c:
	case <-ctx.Done():
		return ctx.Err()
	case <-n.stopc:
		return api.ErrNoLeader
	}
	acc := <-c.accepted
	if acc.err != nil {
		return &api.BadRequestError{Field: "members", Msg: acc.err.Error()}
	}
	n.log.Warn().Strs("members", keep).Msg("FORCED a new membership (disaster recovery): writes only the lost nodes held are gone; never restart them with their old data")
	select {
	case out := <-acc.w.done:
		return out.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// handleConfChange runs on the loop goroutine.
func (n *Node) handleConfChange(c *confChange) {
	var index uint64
	if c.force != nil {
		if err := n.r.ForceReconfigure(c.force); err != nil {
			c.accepted <- acceptance{err: err}
			return
		}
		index = n.r.LastIndex()
	} else {
		if n.r.Role() != replica.Leader {
			c.accepted <- acceptance{err: replica.ErrNotLeader}
			return
		}
		next, err := c.fn(n.r.Membership())
		if err != nil {
			c.accepted <- acceptance{err: err}
			return
		}
		if index, err = n.r.ProposeConfChange(next); err != nil {
			c.accepted <- acceptance{err: err}
			return
		}
	}
	w := &waiter{index: index, term: n.r.Term(), w: master.Majority(n.r.Voters()), done: make(chan outcome, 1)}
	n.addWaiter(w)
	c.accepted <- acceptance{w: w}
	n.log.Info().Uint64("index", index).Int("voters", n.r.Voters()).Int("members", len(n.r.Membership().Members)).Msg("membership change proposed")
}

// joinLoop asks the members listed in PEERS to add this fresh node, until
// one answers yes or the node stops.
func (n *Node) joinLoop() {
	me := api.Peer{ID: n.id, HTTP: n.advertiseHTTP(), GRPC: n.advertiseGRPC()}
	c := client.New() // one pool of connections; On picks the peer
	backoff := 200 * time.Millisecond
	for attempt := 0; ; attempt++ {
		for _, p := range n.cfg.Peers {
			url, err := config.PeerURL(p)
			if err != nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			_, err = c.On(url).Join(ctx, me)
			cancel()
			if err == nil {
				n.log.Info().Str("via", p).Msg("joined the cluster as a learner; becomes a voter once caught up")
				return
			}
			if attempt%10 == 0 {
				n.log.Warn().Err(err).Str("peer", p).Msg("cannot join the cluster yet; retrying")
			}
		}
		select {
		case <-time.After(backoff):
		case <-n.stopc:
			return
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}
