package auth

import (
	"errors"
	"testing"
)

// FuzzParsePolicy: no repository policy makes ParsePolicy panic; what it
// refuses is a *PolicyError (ErrInvalidPolicy), and what it accepts has
// statements that each allow or deny some action.
func FuzzParsePolicy(f *testing.F) {
	for _, s := range []string{
		`{"Version":"2012-10-17","Id":"example","Statement":[` +
			`{"Sid":"AllowDevPush","Effect":"Allow","Principal":{"AWS":["user:alice","group:dev","user:*"]},` +
			`"Action":["ecr:BatchGetImage","ecr:GetDownloadUrlForLayer","ecr:PutImage","ecr:ListImages"],` +
			`"Condition":{"IpAddress":{"aws:SourceIp":["10.0.0.0/8","192.0.2.7","::ffff:172.16.0.0/108"]},` +
			`"NotIpAddress":{"aws:sourceip":"10.9.0.0/16"}}},` +
			`{"Effect":"Deny","Principal":"*","Action":"ecr:*"},` +
			`{"Effect":"Allow","Principal":{"Users":["bob","*"],"Groups":"ops"},"Action":"DELETE"}]}`,
		`{"Statement":{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"pull"}}`,
		`{"Version":"2008-10-17","Statement":[{"Effect":"Deny","Principal":{"AWS":"user:mallory"},"Action":["push","delete"]}]}`,
		`{"Statement":[]}`,
		`{"Statement":[{"Effect":"Allow","Principal":"*","Action":"pull","Condition":{"IpAddress":{"aws:SourceIp":"300.0.0.0/8"}}}]}`,
		`{"Statement": [`,
		`null`,
		`[]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePolicy(data)
		if err != nil {
			var pe *PolicyError
			if !errors.As(err, &pe) || !errors.Is(err, ErrInvalidPolicy) {
				t.Fatalf("ParsePolicy(%q): %v is not a *PolicyError", data, err)
			}
			return
		}
		if len(p.Statements) == 0 {
			t.Fatalf("ParsePolicy(%q) accepted a policy without statements", data)
		}
		for i, st := range p.Statements {
			if (st.Effect != Allow && st.Effect != Deny) || len(st.Actions) == 0 {
				t.Fatalf("ParsePolicy(%q): statement %d is %+v", data, i, st)
			}
		}
	})
}
