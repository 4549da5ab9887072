"""Camera and LiDAR geometry: the camera model, rigid transforms, LiDAR projection, back-projection, cloud packing."""
