package contract

import (
	"strings"
	"testing"
)

func TestValidateRemoteURL(t *testing.T) {
	tests := []struct {
		url      string
		loopback bool
		wantErr  string // substring; empty means valid
	}{
		{url: "https://github.com/skypanel/demo.git"},
		{url: "https://github.com/skypanel/demo"},
		{url: "https://GitHub.com/skypanel/demo.git"},
		{url: "https://git.example.com:8443/team/app.git"},
		{url: "https://140.82.112.3/skypanel/demo.git"},
		{url: "http://127.0.0.1:9999/repo.git", loopback: true},
		{url: "http://localhost:9999/repo.git", loopback: true},
		{url: "http://[::1]:9999/repo.git", loopback: true},
		{url: "https://127.0.0.1/repo.git", loopback: true},

		{url: "", wantErr: "empty"},
		{url: "ext::sh -c touch /tmp/x", wantErr: "spaces"},
		{url: "ext::sh", wantErr: "transport"},
		{url: "--upload-pack=x", wantErr: "must not start with '-'"},
		{url: "-oProxyCommand=x", wantErr: "must not start with '-'"},
		{url: "file:///etc", wantErr: `"file" transport`},
		{url: "/etc/passwd", wantErr: "https://"},
		{url: "git://github.com/a/b.git", wantErr: `"git" transport`},
		{url: "ssh://git@github.com/a/b.git", wantErr: `"ssh" transport`},
		{url: "git@github.com:a/b.git", wantErr: "https://"},
		{url: "github.com:a/b.git", wantErr: "transport"},
		{url: "fd::17/foo", wantErr: "transport"},
		{url: "http://github.com/a/b.git", wantErr: "must use https"},
		{url: "http://github.com/a/b.git", loopback: true, wantErr: "must use https"},
		{url: "http://127.0.0.1:9999/repo.git", wantErr: "only for loopback hosts in development"},
		{url: "https://user:pw@host.example.com/x", wantErr: "user name or password"},
		{url: "https://token@github.com/x", wantErr: "user name or password"},
		{url: "https://github.com/a/b.git?x=1", wantErr: "query"},
		{url: "https://github.com/a/b.git?", wantErr: "query"},
		{url: "https://github.com/a/b.git#main", wantErr: "fragment"},
		{url: "https:///a/b.git", wantErr: "no host"},
		{url: "https:github.com/a", wantErr: "form https://host/path"},
		{url: "https://github.com:/a", wantErr: "empty port"},
		{url: "https://github.com:99999/a", wantErr: "invalid port"},
		{url: "https://169.254.169.254/", wantErr: "link-local"},
		{url: "https://169.254.169.254/", loopback: true, wantErr: "link-local"},
		{url: "https://[::1]/", wantErr: "loopback"},
		{url: "https://127.0.0.1/", wantErr: "loopback"},
		{url: "https://127.0.0.2:8080/x", wantErr: "loopback"},
		{url: "https://10.0.0.1/", wantErr: "private"},
		{url: "https://172.16.3.4/", wantErr: "private"},
		{url: "https://192.168.1.1/", wantErr: "private"},
		{url: "https://[fd00::1]/", wantErr: "private"},
		{url: "https://[fe80::1]/", wantErr: "link-local"},
		{url: "https://[::ffff:127.0.0.1]/", wantErr: "loopback"},
		{url: "https://[::ffff:169.254.169.254]/", wantErr: "link-local"},
		{url: "https://0.0.0.0/", wantErr: "unspecified"},
		{url: "https://[::]/", wantErr: "unspecified"},
		{url: "https://239.1.2.3/", wantErr: "multicast"},
		{url: "https://100.64.0.1/", wantErr: "reserved"},
		{url: "https://255.255.255.255/", wantErr: "broadcast"},
		{url: "https://localhost/x", wantErr: "localhost"},
		{url: "https://LOCALHOST/x", wantErr: "localhost"},
		{url: "https://app.localhost/x", wantErr: "localhost"},
		{url: "https://printer.local/x", wantErr: "private network name"},
		{url: "https://metadata.google.internal/", wantErr: "private network name"},
		{url: "https://github.com./x", wantErr: "dot"},
		{url: "https://2130706433/", wantErr: "numeric"},
		{url: "https://127.1/", wantErr: "numeric"},
		{url: "https://0x7f.1/", wantErr: "numeric"},
		{url: "https://exa_mple.com/", wantErr: "not a valid host name"},
		{url: "https://-bad.com/", wantErr: "not a valid host name"},
		{url: "https://%31%32%37.0.0.1/x", wantErr: "percent-encoding"},
		{url: "https://[fe80::1%25eth0]/", wantErr: "percent-encoding"},
		{url: `https://evil.example\@github.com/x`, wantErr: "backslash"},
		{url: "https://github.com@evil.example/x", wantErr: "user name or password"},
		{url: "https://github.com/a%20b.git"},
		{url: "https://github.com/a b", wantErr: "spaces"},
		{url: "https://github.com/a\nb", wantErr: "control"},
		{url: "https://github.com/" + strings.Repeat("a", 3000), wantErr: "longer"},
	}
	for _, tt := range tests {
		err := ValidateRemoteURL(tt.url, tt.loopback)
		if tt.wantErr == "" {
			if err != nil {
				t.Errorf("ValidateRemoteURL(%q, %v) = %v, want nil", tt.url, tt.loopback, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("ValidateRemoteURL(%q, %v) = nil, want error containing %q", tt.url, tt.loopback, tt.wantErr)
			continue
		}
		if !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("ValidateRemoteURL(%q, %v) = %q, want it to contain %q", tt.url, tt.loopback, err, tt.wantErr)
		}
		if strings.Contains(err.Error(), "pw") {
			t.Errorf("error for %q repeats the credentials: %q", tt.url, err)
		}
	}
}

func TestValidateBranch(t *testing.T) {
	valid := []string{"main", "master", "feature/login", "release-1.2", "v1.0", "user/name/topic", "a@b", "é-unicode", strings.Repeat("a", 255)}
	for _, name := range valid {
		if err := ValidateBranch(name); err != nil {
			t.Errorf("ValidateBranch(%q) = %v, want nil", name, err)
		}
	}
	invalid := []struct{ name, wantErr string }{
		{"", "empty"},
		{strings.Repeat("a", 256), "longer than 255"},
		{"-f", "start with '-'"},
		{"--upload-pack=x", "start with '-'"},
		{"a..b", "'..'"},
		{"../../etc", "'..'"},
		{"a b", "spaces"},
		{"a\tb", "control"},
		{"a\x7fb", "control"},
		{"a~1", `'~'`},
		{"a^", `'^'`},
		{"a:b", `':'`},
		{"a?", `'?'`},
		{"a*", `'*'`},
		{"a[b", `'['`},
		{`a\b`, `'\\'`},
		{"a@{1}", "'@{'"},
		{"@", "'@'"},
		{"HEAD", "'HEAD'"},
		{"a/", "end with '/'"},
		{"/a", "start with '/'"},
		{"a//b", "'//'"},
		{"a.lock", "'.lock'"},
		{"a.lock/b", "'.lock'"},
		{"a.", "end with '.'"},
		{".hidden", "start with '.'"},
		{"a/.b", "start with '.'"},
	}
	for _, tt := range invalid {
		err := ValidateBranch(tt.name)
		if err == nil {
			t.Errorf("ValidateBranch(%q) = nil, want error containing %q", tt.name, tt.wantErr)
			continue
		}
		if !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("ValidateBranch(%q) = %q, want it to contain %q", tt.name, err, tt.wantErr)
		}
	}
}
