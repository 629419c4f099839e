package fakegithub

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/google/go-github/v62/github"
)

const zeroCommit = "0000000000000000000000000000000000000000"

// PushPayload is a push webhook body in GitHub's shape for fullName ("owner/name"). branch is a
// branch name, or a full ref ("refs/tags/v1") to push something else. An all-zero after makes it
// a deletion (no head commit), an all-zero before a creation.
func PushPayload(fullName, branch, before, after, message string) []byte {
	ref := branch
	if !strings.HasPrefix(ref, "refs/") {
		ref = "refs/heads/" + branch
	}
	owner, name, _ := strings.Cut(fullName, "/")
	now := github.Timestamp{Time: time.Now().UTC().Truncate(time.Second)}
	pusher := &github.CommitAuthor{Name: github.String(owner), Email: github.String(owner + "@users.noreply.github.com")}
	ev := github.PushEvent{
		Ref:     github.String(ref),
		Before:  github.String(before),
		After:   github.String(after),
		Created: github.Bool(before == zeroCommit),
		Deleted: github.Bool(after == zeroCommit),
		Forced:  github.Bool(false),
		Repo: &github.PushEventRepository{
			Name:          github.String(name),
			FullName:      github.String(fullName),
			Owner:         &github.User{Login: github.String(owner), Name: github.String(owner)},
			DefaultBranch: github.String("main"),
			MasterBranch:  github.String("main"),
		},
		Pusher: pusher,
		Sender: &github.User{Login: github.String(owner), Type: github.String("User")},
	}
	if after != zeroCommit {
		commit := &github.HeadCommit{
			ID:        github.String(after),
			TreeID:    github.String(after),
			Message:   github.String(message),
			Timestamp: &now,
			Distinct:  github.Bool(true),
			Author:    pusher,
			Committer: pusher,
		}
		ev.HeadCommit = commit
		ev.Commits = []*github.HeadCommit{commit}
	}
	body, err := json.Marshal(ev)
	if err != nil {
		panic(err) // a struct of strings and bools always marshals
	}
	return body
}
