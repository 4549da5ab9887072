"""ROS-free node application: the parameter/configuration table and the wiring of engines into pipelines."""
