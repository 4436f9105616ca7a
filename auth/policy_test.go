package auth

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestParsePolicy(t *testing.T) {
	p, err := ParsePolicy([]byte(`{
	  "Version": "2012-10-17",
	  "Id": "example",
	  "Statement": [
	    {"Sid": "EcrNames", "Effect": "Allow",
	     "Principal": {"AWS": ["user:alice", "group:dev", "user:*"]},
	     "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:PutImage", "ecr:ListImages"],
	     "Condition": {"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "192.0.2.7", "::ffff:172.16.0.0/108"]},
	                   "NotIpAddress": {"aws:sourceip": "10.9.0.0/16"}}},
	    {"Effect": "Deny", "Principal": "*", "Action": "ecr:*"},
	    {"Effect": "Allow", "Principal": {"Users": ["bob", "*"], "Groups": "ops"}, "Action": "DELETE"}
	  ]}`))
	if err != nil {
		t.Fatal(err)
	}
	if p.Version != "2012-10-17" || p.ID != "example" || len(p.Statements) != 3 {
		t.Fatalf("policy = %+v", p)
	}
	s0, s1, s2 := p.Statements[0], p.Statements[1], p.Statements[2]
	if s0.Sid != "EcrNames" || s0.Effect != Allow || !slices.Equal(s0.Actions, []string{"pull", "push", "list"}) {
		t.Errorf("statement 0 = %+v", s0)
	}
	if want := (Principals{AnyUser: true, Users: []string{"alice"}, Groups: []string{"dev"}}); !principalsEqual(s0.Principals, want) {
		t.Errorf("statement 0 principals = %+v", s0.Principals)
	}
	wantIPs := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("172.16.0.0/12")}
	if !slices.Equal(s0.SourceIP, wantIPs) || !slices.Equal(s0.NotSourceIP, []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}) {
		t.Errorf("statement 0 conditions = %v / %v", s0.SourceIP, s0.NotSourceIP)
	}
	if s1.Effect != Deny || !s1.Principals.Everyone || !slices.Equal(s1.Actions, AllActions()) {
		t.Errorf("statement 1 = %+v", s1)
	}
	if !s2.Principals.AnyUser || !slices.Equal(s2.Principals.Users, []string{"bob"}) ||
		!slices.Equal(s2.Principals.Groups, []string{"ops"}) || !slices.Equal(s2.Actions, []string{"delete"}) {
		t.Errorf("statement 2 = %+v", s2)
	}

	// A single statement object, no Version, and {"AWS": "*"}.
	p, err = ParsePolicy([]byte(`{"Statement": {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "pull"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Statements) != 1 || !p.Statements[0].Principals.Everyone {
		t.Fatalf("policy = %+v", p)
	}
}

func principalsEqual(a, b Principals) bool {
	return a.Everyone == b.Everyone && a.AnyUser == b.AnyUser && slices.Equal(a.Users, b.Users) && slices.Equal(a.Groups, b.Groups)
}

func TestParsePolicyErrors(t *testing.T) {
	// stmt wraps a statement body into a valid policy.
	stmt := func(body string) string { return `{"Version":"2012-10-17","Statement":[` + body + `]}` }
	const ok = `"Effect":"Allow","Principal":"*","Action":"pull"`
	tests := []struct {
		name      string
		policy    string
		wantField string
		wantMsg   string
	}{
		{name: "not json", policy: `{"Statement": [`, wantField: "", wantMsg: "malformed JSON"},
		{name: "not an object", policy: `[]`, wantField: "", wantMsg: "JSON object"},
		{name: "null", policy: `null`, wantField: "", wantMsg: "JSON object"},
		{name: "unknown top key", policy: `{"Statement":[{` + ok + `}],"Rules":[]}`, wantField: "Rules", wantMsg: "unknown key"},
		{name: "lower-case key", policy: `{"statement":[{` + ok + `}]}`, wantField: "statement", wantMsg: "unknown key"},
		{name: "bad version", policy: `{"Version":"2020-01-01","Statement":[{` + ok + `}]}`, wantField: "Version", wantMsg: "2020-01-01"},
		{name: "missing statement", policy: `{"Version":"2012-10-17"}`, wantField: "Statement", wantMsg: "missing"},
		{name: "empty statement", policy: stmt(``), wantField: "Statement", wantMsg: "empty"},
		{name: "statement not a list", policy: `{"Statement":"x"}`, wantField: "Statement", wantMsg: "list"},
		{name: "statement not an object", policy: stmt(`42`), wantField: "Statement[0]", wantMsg: "JSON object"},
		{name: "unknown statement key", policy: stmt(`{` + ok + `,"Resource":"*"}`), wantField: "Statement[0].Resource", wantMsg: "unknown key"},
		{name: "missing effect", policy: stmt(`{"Principal":"*","Action":"pull"}`), wantField: "Statement[0].Effect", wantMsg: "missing"},
		{name: "unknown effect", policy: stmt(`{` + ok + `},{"Effect":"Maybe","Principal":"*","Action":"pull"}`), wantField: "Statement[1].Effect", wantMsg: `"Maybe"`},
		{name: "lower-case effect", policy: stmt(`{"Effect":"allow","Principal":"*","Action":"pull"}`), wantField: "Statement[0].Effect", wantMsg: "unknown effect"},
		{name: "missing principal", policy: stmt(`{"Effect":"Allow","Action":"pull"}`), wantField: "Statement[0].Principal", wantMsg: "missing"},
		{name: "principal string", policy: stmt(`{"Effect":"Allow","Principal":"alice","Action":"pull"}`), wantField: "Statement[0].Principal", wantMsg: `"alice"`},
		{name: "principal unknown key", policy: stmt(`{"Effect":"Allow","Principal":{"Service":"ecs"},"Action":"pull"}`), wantField: "Statement[0].Principal.Service", wantMsg: "unknown key"},
		{name: "principal empty", policy: stmt(`{"Effect":"Allow","Principal":{},"Action":"pull"}`), wantField: "Statement[0].Principal", wantMsg: "empty"},
		{name: "principal bad AWS entry", policy: stmt(`{"Effect":"Allow","Principal":{"AWS":["user:a","arn:aws:iam::1:root"]},"Action":"pull"}`), wantField: "Statement[0].Principal.AWS[1]", wantMsg: "user:NAME"},
		{name: "principal empty user", policy: stmt(`{"Effect":"Allow","Principal":{"AWS":"user:"},"Action":"pull"}`), wantField: "Statement[0].Principal.AWS[0]", wantMsg: "user:NAME"},
		{name: "principal group star", policy: stmt(`{"Effect":"Allow","Principal":{"Groups":["*"]},"Action":"pull"}`), wantField: "Statement[0].Principal.Groups[0]", wantMsg: "not a group"},
		{name: "principal users not strings", policy: stmt(`{"Effect":"Allow","Principal":{"Users":[1]},"Action":"pull"}`), wantField: "Statement[0].Principal.Users", wantMsg: "string"},
		{name: "missing action", policy: stmt(`{"Effect":"Allow","Principal":"*"}`), wantField: "Statement[0].Action", wantMsg: "missing"},
		{name: "unknown action", policy: stmt(`{"Effect":"Allow","Principal":"*","Action":["pull","ecr:GetAuthorizationToken"]}`), wantField: "Statement[0].Action[1]", wantMsg: `"ecr:GetAuthorizationToken"`},
		{name: "empty action list", policy: stmt(`{"Effect":"Allow","Principal":"*","Action":[]}`), wantField: "Statement[0].Action", wantMsg: "empty"},
		{name: "action not string", policy: stmt(`{"Effect":"Allow","Principal":"*","Action":{"a":1}}`), wantField: "Statement[0].Action", wantMsg: "string"},
		{name: "empty condition", policy: stmt(`{` + ok + `,"Condition":{}}`), wantField: "Statement[0].Condition", wantMsg: "empty"},
		{name: "unknown operator", policy: stmt(`{` + ok + `,"Condition":{"StringEquals":{"aws:username":"a"}}}`), wantField: "Statement[0].Condition.StringEquals", wantMsg: "IpAddress"},
		{name: "unknown condition key", policy: stmt(`{` + ok + `,"Condition":{"IpAddress":{"aws:VpcSourceIp":"10.0.0.0/8"}}}`), wantField: "Statement[0].Condition.IpAddress.aws:VpcSourceIp", wantMsg: "aws:SourceIp"},
		{name: "bad cidr", policy: stmt(`{` + ok + `,"Condition":{"IpAddress":{"aws:SourceIp":["10.0.0.0/8","10.0.0.0/33"]}}}`), wantField: "Statement[0].Condition.IpAddress.aws:SourceIp[1]", wantMsg: "bad CIDR"},
		{name: "bad address", policy: stmt(`{` + ok + `,"Condition":{"NotIpAddress":{"aws:SourceIp":"example.com"}}}`), wantField: "Statement[0].Condition.NotIpAddress.aws:SourceIp[0]", wantMsg: "bad CIDR"},
		{name: "empty cidr list", policy: stmt(`{` + ok + `,"Condition":{"IpAddress":{"aws:SourceIp":[]}}}`), wantField: "Statement[0].Condition.IpAddress.aws:SourceIp", wantMsg: "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParsePolicy([]byte(tt.policy))
			if !errors.Is(err, ErrInvalidPolicy) {
				t.Fatalf("err = %v, want ErrInvalidPolicy", err)
			}
			var pe *PolicyError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %T, want *PolicyError", err)
			}
			if pe.Field != tt.wantField {
				t.Errorf("Field = %q, want %q (err: %v)", pe.Field, tt.wantField, err)
			}
			if !strings.Contains(err.Error(), tt.wantField) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("err %q should name %q and say %q", err, tt.wantField, tt.wantMsg)
			}
		})
	}
}
