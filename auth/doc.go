// Package auth is Berth's authentication and authorization: who a client is,
// what it may do, and the Docker registry token flow that carries the answer
// to the registry.
//
// # Users
//
// Users come from an htpasswd file holding bcrypt hashes only
// (htpasswd -B, "user:$2y$..."); any other hash kind (MD5 $apr1$, {SHA},
// crypt) is refused with an error naming the line. Groups come from an
// optional groups file ("group: alice bob", as Apache's AuthGroupFile) and/or
// a group → users map from the config. [Reloadable] re-reads both on demand
// (the daemon calls Reload on SIGHUP) and keeps the previous set when the new
// files are broken.
//
// # Tokens
//
// Clients get a bearer token the way Docker's token authentication
// specification describes: the registry answers 401 with a [Challenge], the
// client calls GET /token?service=berth&scope=repository:private/app:pull,push
// with Basic credentials (or none, for anonymous access) and sends the token
// it gets back. [TokenHandler] serves that endpoint; the token is a JWT
// carrying Docker's "access" claim, trimmed to the actions the [Authorizer]
// grants. Like an ECR authorization token it is valid 12 hours by default.
// The [Issuer] signs with the first configured key and verifies with all of
// them (selected by the "kid" header), so a key can be rotated without
// invalidating tokens already handed out: put the new key first, keep the old
// one until its last token has expired (the token TTL), then drop it.
//
// Every token with a subject carries a binding of the user's htpasswd entry
// ([Authenticator.Binding]) and is checked against it on every use: a
// password change or the user's removal ends every token the user holds.
// A login token (login=true, what `berth get-login-password` asks for) is
// the only token accepted in place of a password ([TokenAuthenticator]);
// a token minted with it never outlives it. Any other token is good for
// its own scope only. One request asks for at most [MaxScopes] scopes.
//
// # Policies and the action set
//
// Repository policies use the JSON shape of ECR repository policies (see
// [ParsePolicy]). Berth knows four actions; a policy may name them directly
// or by the ECR API actions that map to them:
//
//	pull    ecr:BatchGetImage, ecr:GetDownloadUrlForLayer,
//	        ecr:BatchCheckLayerAvailability
//	        Fetch manifests and blobs (GET/HEAD), list a repository's tags,
//	        and be the source of a cross-repository blob mount.
//	push    ecr:PutImage, ecr:InitiateLayerUpload, ecr:UploadLayerPart,
//	        ecr:CompleteLayerUpload
//	        Upload blobs, put manifests and tags, mount a blob into the
//	        repository.
//	delete  ecr:BatchDeleteImage
//	        Delete manifests, tags and blobs.
//	list    ecr:ListImages, ecr:DescribeImages, ecr:DescribeRepositories
//	        See the repository in /v2/_catalog and in Berth's listing APIs.
//	        The catalog itself (registry:catalog:*) is checked as "list" on
//	        the empty repository name, to which only namespace policies
//	        with the pattern "*" apply.
//	*, ecr:*  all four.
//
// In a token scope Docker spells these pull, push, delete and "*" (which the
// token handler grants only when pull, push and delete are all allowed).
//
// # Evaluation
//
// [Evaluator] follows ECR's rules: a Deny in any applicable statement wins;
// otherwise an Allow in any applicable statement grants; with neither, only
// the defaults grant. Applicable policies are the repository's own policy and
// the policy of every namespace pattern that matches its name ("private/*",
// "docker-hub/*", "*"; "*" matches any run of characters, slashes included).
// The defaults, each a config field (see [DefaultDefaults]): anonymous
// clients may pull proxied (cached) repositories; authenticated users may
// pull and list cached repositories, pull, push and list local ones, and read
// the catalog.
package auth
