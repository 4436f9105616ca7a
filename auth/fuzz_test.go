package auth

import (
	"berth/internal/testclock"
	"strings"
	"testing"
)

// FuzzVerify: no input makes Verify panic, and whatever it accepts says
// what the issuer signed (an attacker's bytes are never a token).
func FuzzVerify(f *testing.F) {
	is := newIssuer(f, testclock.New(), KeyConfig{Secret: secret(1)})
	good, _, err := is.Sign(TokenSpec{Subject: "alice", Login: true, Binding: "b",
		Access: []Access{{Type: TypeRepository, Name: "private/app", Actions: []string{ActionPull}}}})
	if err != nil {
		f.Fatal(err)
	}
	h, p, _ := strings.Cut(good, ".")
	f.Add(good)
	f.Add(good[:len(good)-2])
	f.Add(h + "." + p + ".")
	f.Add(`eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJhbGljZSJ9.`)
	f.Add("")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := is.Verify(tok)
		if err != nil {
			return
		}
		// Only the seed was signed (in this process or the one that made
		// the corpus): what verifies says exactly what it says.
		if c.Subject != "alice" || !c.Login || c.Binding != "b" ||
			mustJSON(t, c.Access) != `[{"type":"repository","name":"private/app","actions":["pull"]}]` {
			t.Fatalf("Verify accepted %q with claims %+v, which the issuer never signed", tok, c)
		}
	})
}

// FuzzParseScope: no input makes ParseScope panic, and what it accepts
// prints back to scopes that parse to the same access.
func FuzzParseScope(f *testing.F) {
	for _, s := range []string{
		"repository:private/app:pull,push",
		"repository:a:pull repository:a:push registry:catalog:*",
		"repository(plugin):x/y:pull",
		"repository:host:5000/app:pull",
		"repository::pull",
		"a:b:c:d:e",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		acc, err := ParseScope(s)
		if err != nil {
			return
		}
		parts := make([]string, len(acc))
		for i, a := range acc {
			parts[i] = a.String()
		}
		again, err := ParseScope(strings.Join(parts, " "))
		if err != nil {
			t.Fatalf("%q parsed to %v, which does not parse again: %v", s, acc, err)
		}
		if mustJSON(t, again) != mustJSON(t, acc) {
			t.Fatalf("%q: %v, then %v", s, acc, again)
		}
	})
}
