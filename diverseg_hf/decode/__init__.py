"""The one strict decode path: bytes to OpenCV-equal pixels, or an ImageError with the reason."""
