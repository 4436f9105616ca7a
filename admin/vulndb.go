package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"path"
	"time"

	"berth/vulndb"

	"go.uber.org/zap"
)

// VulnDB is the node's vulnerability database (*vulndb.DB).
type VulnDB interface {
	Describe(ctx context.Context) (vulndb.Info, error)
	ImportStream(ctx context.Context, name string, r io.Reader) (vulndb.Info, error)
}

var _ VulnDB = (*vulndb.DB)(nil)

// CodeVulnDBNotFound (Berth) answers describe-vulndb while no database was
// imported.
const CodeVulnDBNotFound = "VulnerabilityDatabaseNotFoundException"

// VulnDBResponse (Berth) is describe-vulndb's and import-vulndb's answer:
// the database served.
type VulnDBResponse struct {
	Database vulndb.Info `json:"database"`
}

// DescribeVulnDBRequest is describe-vulndb's request: nothing.
type DescribeVulnDBRequest struct{}

func (s *Service) describeVulnDB(ctx context.Context, _ *DescribeVulnDBRequest) (*VulnDBResponse, error) {
	if s.o.VulnDB == nil {
		return nil, notFound(CodeVulnDBNotFound, "this node has no vulnerability database")
	}
	info, err := s.o.VulnDB.Describe(ctx)
	if errors.Is(err, vulndb.ErrNoDatabase) {
		return nil, notFound(CodeVulnDBNotFound, "%s", err.Error())
	}
	if err != nil {
		return nil, err
	}
	return &VulnDBResponse{Database: info}, nil
}

// VulnDBSourceParam is import-vulndb's query parameter naming the upload
// (a file name, shown by describe-vulndb as the source).
const VulnDBSourceParam = "source"

// vulnDBTypes are the content types import-vulndb takes. None is one a
// web page can send to another origin without a preflight this API never
// grants.
var vulnDBTypes = map[string]bool{
	"application/zip": true, "application/x-tar": true, "application/gzip": true, "application/json": true,
}

// ImportVulnDBHandler is import-vulndb (POST Prefix+"import-vulndb"): the
// body is the database itself, an OSV zip dump (application/zip), a tar of
// OSV JSON files and zip dumps (application/x-tar, or application/gzip
// when compressed), or one OSV record (application/json). It is uploaded
// rather than named by a path on the node, so an operator imports from
// wherever the file is, and the API reads no file of the node's it is
// told to. The import is whole or nothing: a bad file or record is a 400
// naming it, and the database served stays.
func (s *Service) ImportVulnDBHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); !vulnDBTypes[mt] {
			writeError(w, &Error{Status: http.StatusUnsupportedMediaType, Code: CodeUnsupportedMediaType,
				Message: "import-vulndb takes the database as the body: application/zip (an OSV zip dump), application/x-tar or application/gzip (a tar of OSV JSON files and zip dumps), or application/json (one OSV record)"})
			return
		}
		if e := checkHost(r); e != nil {
			writeError(w, e)
			return
		}
		if s.o.VulnDB == nil {
			writeError(w, notFound(CodeVulnDBNotFound, "this node has no vulnerability database"))
			return
		}
		name := path.Base(r.URL.Query().Get(VulnDBSourceParam))
		if name == "." || name == "/" {
			name = "upload"
		}
		// A database takes as long as it takes: no read deadline.
		_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
		info, err := s.o.VulnDB.ImportStream(r.Context(), name, r.Body)
		switch {
		case errors.Is(err, vulndb.ErrInvalid):
			s.log.Warn("vulnerability database import refused", zap.String("source", name), zap.Error(err))
			writeError(w, invalidf("", "import-vulndb: %v; the database served is unchanged", err))
			return
		case err != nil:
			writeError(w, s.apiError(fmt.Errorf("import-vulndb: %w", err)))
			return
		}
		writeJSON(w, http.StatusOK, VulnDBResponse{Database: info})
	})
}
