package ui

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// auditLines is how many audit events the page shows.
const auditLines = 50

// tailChunk bounds what tailLines reads from the end of the file.
const tailChunk = 256 << 10

// tailLines returns the last n JSON lines of the file at path, oldest
// first. A missing file has none (no event was written yet); a line that
// is not JSON (cut by the read window or a torn write) is skipped.
func tailLines(path string, n int) ([]json.RawMessage, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return []json.RawMessage{}, nil
	}
	if err != nil {
		return []json.RawMessage{}, fmt.Errorf("audit log: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return []json.RawMessage{}, fmt.Errorf("audit log: %w", err)
	}
	off := max(st.Size()-tailChunk, 0)
	buf := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
		return []json.RawMessage{}, fmt.Errorf("audit log: %w", err)
	}
	lines := bytes.Split(bytes.TrimRight(buf, "\n"), []byte("\n"))
	out := []json.RawMessage{}
	for i := len(lines) - 1; i >= 0 && len(out) < n; i-- {
		if json.Valid(lines[i]) && len(bytes.TrimSpace(lines[i])) > 0 {
			out = append(out, json.RawMessage(lines[i]))
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}
