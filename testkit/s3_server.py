"""A real S3-compatible server for tests: moto's server mode on 127.0.0.1 and a free port.

The product talks to it over HTTP through s3fs exactly as to AWS or MinIO; only the endpoint differs
(MODEL_STORE_ENDPOINT_URL). Credentials are the standard AWS variables, with dummy values.
"""

from __future__ import annotations

import socket

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class S3Server:
    """moto's ThreadedMotoServer, with a boto3 client for setting up buckets and looking at raw objects."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)

    def start(self) -> S3Server:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def client(self) -> object:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
        )

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)  # type: ignore[attr-defined]

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        listing = self.client().list_objects_v2(Bucket=bucket, Prefix=prefix)  # type: ignore[attr-defined]
        return sorted(item["Key"] for item in listing.get("Contents", []))

    def put(self, bucket: str, key: str, body: bytes) -> None:
        self.client().put_object(Bucket=bucket, Key=key, Body=body)  # type: ignore[attr-defined]

    def get(self, bucket: str, key: str) -> bytes:
        return bytes(self.client().get_object(Bucket=bucket, Key=key)["Body"].read())  # type: ignore[attr-defined]
