package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/replog/replog/pkg/api"
	"github.com/replog/replog/pkg/client"
)

// commands are the operator's subcommands; each returns the exit code.
var commands = map[string]func(args []string, out, errOut io.Writer) int{
	"healthcheck":       func([]string, io.Writer, io.Writer) int { return healthcheck() },
	"status":            statusCmd,
	"remove-member":     removeMemberCmd,
	"force-reconfigure": forceReconfigureCmd,
}

// localURL is this machine's node, as PORT (default 8080) says.
func localURL() string {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	return "http://127.0.0.1:" + port
}

func cmdFlags(name, usage string, errOut io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(errOut)
	node := fs.String("node", localURL(), "the node's HTTP address")
	fs.Usage = func() {
		fmt.Fprintf(errOut, "usage: replog %s\n", usage)
		fs.PrintDefaults()
	}
	return fs, node
}

// parse parses args and wants nargs arguments after the flags; flag prints
// the usage on a bad flag, parse on a wrong count.
func parse(fs *flag.FlagSet, args []string, nargs int) bool {
	if fs.Parse(args) != nil {
		return false
	}
	if fs.NArg() != nargs {
		fs.Usage()
		return false
	}
	return true
}

// healthcheck is the container health probe: the final image has no shell
// and no curl.
func healthcheck() int {
	if port := os.Getenv("PORT"); port != "" {
		if _, err := strconv.Atoi(port); err != nil {
			fmt.Fprintln(os.Stderr, "healthcheck: bad PORT", port)
			return 1
		}
	}
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(localURL() + "/health")
	if err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, "healthcheck: status", resp.StatusCode)
		return 1
	}
	return 0
}

// statusCmd prints a node's /status: a table of members, or the JSON.
func statusCmd(args []string, out, errOut io.Writer) int {
	fs, node := cmdFlags("status", "status [-node URL] [-json]", errOut)
	asJSON := fs.Bool("json", false, "print the JSON of GET /status")
	if !parse(fs, args, 0) {
		return 2
	}
	st, err := client.New(*node).Status(context.Background())
	if err != nil {
		fmt.Fprintln(errOut, "replog status:", err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		enc.Encode(st)
		return 0
	}
	printStatus(out, st)
	return 0
}

func printStatus(out io.Writer, st api.Status) {
	leader := "none"
	if st.Leader != nil {
		leader = st.Leader.ID
	}
	fmt.Fprintf(out, "node %s: %s, term %d, master %s, lastId %d, commitId %d, lastIndex %d\n",
		st.ID, st.Role, st.Term, leader, st.LastID, st.CommitID, st.LastIndex)
	for _, m := range st.Members {
		kind := "voter"
		if !m.Voter {
			kind = "learner"
		}
		self := ""
		if m.Self {
			self = " (this node)"
		}
		fmt.Fprintf(out, "  %-24s %-7s http %-22s health %-9s matchId %d behind %d%s\n",
			m.ID, kind, m.HTTP, orDash(m.Health), m.MatchID, m.Behind, self)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// removeMemberCmd removes one member (DELETE /cluster/members/{id}).
func removeMemberCmd(args []string, out, errOut io.Writer) int {
	fs, node := cmdFlags("remove-member", "remove-member [-node URL] ID", errOut)
	if !parse(fs, args, 1) {
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := client.New(*node).RemoveMember(ctx, fs.Arg(0))
	if err != nil {
		fmt.Fprintln(errOut, "replog remove-member:", err)
		return 1
	}
	fmt.Fprintf(out, "removed %s; members now:\n", fs.Arg(0))
	for _, mem := range m.Members {
		fmt.Fprintf(out, "  %s (voter %v)\n", mem.ID, mem.Voter)
	}
	return 0
}

// forceReconfigureCmd is disaster recovery: it shows what the node holds
// and what would be dropped, and only with -yes makes the node the master
// of a new, smaller cluster.
func forceReconfigureCmd(args []string, out, errOut io.Writer) int {
	fs, node := cmdFlags("force-reconfigure", "force-reconfigure [-node URL] [-members ID,ID...] -yes", errOut)
	members := fs.String("members", "", "the members to keep, the node itself included (default: the node alone)")
	yes := fs.Bool("yes", false, "really do it: writes only the dropped members hold are lost")
	if !parse(fs, args, 0) {
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := client.New(*node)
	st, err := c.Status(ctx)
	if err != nil {
		fmt.Fprintln(errOut, "replog force-reconfigure: cannot read the node's status:", err)
		return 1
	}
	keep := []string{st.ID}
	if *members != "" {
		keep = nil
		for _, id := range strings.Split(*members, ",") {
			if id = strings.TrimSpace(id); id != "" {
				keep = append(keep, id)
			}
		}
	}
	var dropped []string
	for _, m := range st.Members {
		if !slices.Contains(keep, m.ID) {
			dropped = append(dropped, m.ID)
		}
	}
	fmt.Fprintf(out, "node %s (%s, term %d) holds messages up to id %d (log index %d).\n", st.ID, st.Role, st.Term, st.LastID, st.LastIndex)
	fmt.Fprintf(out, "new cluster: %s\ndropped:     %s\n", strings.Join(keep, ", "), orDash(strings.Join(dropped, ", ")))
	if !*yes {
		fmt.Fprintln(out, "Writes that only the dropped members hold are lost for good, and the dropped members must never")
		fmt.Fprintln(out, "be restarted with their data. Run it on the survivor with the highest log index.")
		fmt.Fprintln(out, "Nothing was changed; run again with -yes to do it.")
		return 2
	}
	var send []string // empty: the node alone
	if *members != "" {
		send = keep
	}
	m, err := c.ForceReconfigure(ctx, send)
	if err != nil {
		var e *client.Error
		if errors.As(err, &e) && e.Code == "majority_reachable" {
			fmt.Fprintln(errOut, "replog force-reconfigure: refused: a majority is still reachable, so this is not a disaster; remove members with remove-member instead.")
		}
		fmt.Fprintln(errOut, "replog force-reconfigure:", err)
		return 1
	}
	fmt.Fprintf(out, "done: %s is master of %d member(s):\n", st.ID, len(m.Members))
	for _, mem := range m.Members {
		fmt.Fprintf(out, "  %s (voter %v)\n", mem.ID, mem.Voter)
	}
	return 0
}
