// Package s3client is the one S3 client setup of the platform: the control plane verifies,
// serves and deletes backups in the S3 backup store with it, and a node streams its databases'
// dumps to and from the same bucket with it. It imports nothing of the platform, so both sides
// link it alone (the agent links neither pgx nor huma).
package s3client

import (
	"errors"
	"fmt"
	"net/url"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// PartSize is the part size of a streamed upload of unknown length: one part is buffered in
// memory at a time, and S3's 10,000 parts take 640 GiB, more than a backup may hold.
const PartSize = 64 << 20

// SplitEndpoint splits an endpoint URL, http(s)://host[:port], into the host the client dials
// and whether it speaks TLS.
func SplitEndpoint(endpoint string) (host string, secure bool, err error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") ||
		u.User != nil || u.RawQuery != "" {
		return "", false, fmt.Errorf("S3 endpoint %q: want http(s)://host[:port]", endpoint)
	}
	return u.Host, u.Scheme == "https", nil
}

// New makes a client of the S3 API at endpoint (it does not dial). Requests are path-style
// (endpoint/bucket/key), which every S3-compatible server takes.
func New(endpoint, region, accessKey, secretKey string) (*minio.Client, error) {
	host, secure, err := SplitEndpoint(endpoint)
	if err != nil {
		return nil, err
	}
	return minio.New(host, &minio.Options{
		Creds: credentials.NewStaticV4(accessKey, secretKey, ""), Secure: secure, Region: region,
		BucketLookup: minio.BucketLookupPath,
	})
}

// IsNotFound says whether err is S3's answer for a missing object or bucket.
func IsNotFound(err error) bool {
	var resp minio.ErrorResponse
	if errors.As(err, &resp) {
		return resp.Code == minio.NoSuchKey || resp.Code == minio.NoSuchBucket || resp.StatusCode == 404
	}
	return false
}
