package proxy

import (
	"io"
	"net/http"
	"testing"
)

// TestFillsReportProgress: a fill the upstream holds half way is listed
// running, with the bytes written so far of its size; once the upstream
// sends the rest it is listed finished, with every byte and no error.
func TestFillsReportProgress(t *testing.T) {
	e := newEnv(t, envOpts{})
	img, data, layer := bigImage(t, 1<<20, 7)
	e.pushImage(t, "big/app", "v1", img)
	const part = 256 << 10
	_, release := e.holdBlobs(t, part)

	done := make(chan error, 1)
	firstByte := make(chan struct{})
	go func() {
		resp, err := http.Get(e.berth.URL + "/v2/up/big/app/blobs/" + layer.String())
		if err != nil {
			close(firstByte)
			done <- err
			return
		}
		defer resp.Body.Close()
		buf := make([]byte, 1)
		_, err = io.ReadFull(resp.Body, buf)
		close(firstByte)
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
		}
		done <- err
	}()
	<-firstByte // the fill started and wrote some of the bytes
	fills := e.proxy.Fills()
	if len(fills) != 1 {
		t.Fatalf("Fills() = %+v, want the one running", fills)
	}
	f := fills[0]
	if f.Digest != layer.String() || f.Upstream != "up" || f.Repository != "big/app" || f.Done != nil ||
		f.Size != int64(len(data)) || f.Written <= 0 || f.Written > part || f.Source != "upstream up" {
		t.Fatalf("running fill %+v, want %d of %d bytes from upstream up", f, part, len(data))
	}
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Readers get the last byte once the bytes verified; the fill leaves
	// the running set once it committed them.
	e.proxy.fills.wg.Wait()
	fills = e.proxy.Fills()
	if len(fills) != 1 || fills[0].Done == nil || fills[0].Written != int64(len(data)) || fills[0].Error != "" {
		t.Fatalf("Fills() after the fill = %+v, want it finished with every byte", fills)
	}
}
