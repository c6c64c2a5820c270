"""Guided search: hlfp_node (vision) and audio_cue_node (sounds -> cues), with config/guided.yaml.

    ros2 launch hlfp_node guided.launch.py
    ros2 launch hlfp_node guided.launch.py image_topic:=/camera/image_raw device:=cuda:0
    ros2 launch hlfp_node guided.launch.py use_camera:=true camera_index:=1 namespace:=robot1

Arguments left empty keep the value from the params file. Topic wiring: audio_cue_node publishes
`cues`, hlfp_node subscribes to it, both in `namespace`; `image` is remapped to `image_topic`.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = "hlfp_node"


def _as_bool(text, name):
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ValueError(f"launch argument {name}:={text!r}: expected true or false")


def _nodes(context):
    def arg(name):
        return LaunchConfiguration(name).perform(context)

    namespace = arg("namespace")
    params_file = arg("params_file")

    # Only the arguments that were given override the params file.
    vision_overrides = {}
    if arg("use_camera"):
        vision_overrides["use_camera"] = _as_bool(arg("use_camera"), "use_camera")
    if arg("camera_index"):
        vision_overrides["camera_index"] = int(arg("camera_index"))
    audio_overrides = {}
    if arg("model"):
        # A model file's config is the .json next to it (model.safetensors + model.json); the
        # audio node checks its cues against that model's classes.
        vision_overrides["model_path"] = arg("model")
        vision_overrides["model_config"] = os.path.splitext(arg("model"))[0] + ".json"
        audio_overrides["vision_model_config"] = vision_overrides["model_config"]
    if arg("device"):
        vision_overrides["device"] = arg("device")
    if arg("audio_input"):
        audio_overrides["input"] = arg("audio_input")

    vision = Node(
        package=PACKAGE,
        executable="hlfp_node",
        name="hlfp_node",
        namespace=namespace,
        parameters=[params_file, vision_overrides],
        remappings=[("image", arg("image_topic"))],
        output="screen",
    )
    audio = Node(
        package=PACKAGE,
        executable="audio_cue_node",
        name="audio_cue_node",
        namespace=namespace,
        parameters=[params_file, audio_overrides],
        remappings=[("audio", arg("audio_topic"))],
        output="screen",
    )
    nodes = [vision]
    if _as_bool(arg("with_audio"), "with_audio"):
        nodes.append(audio)
    return nodes


def generate_launch_description():
    default_params = os.path.join(get_package_share_directory(PACKAGE), "config", "guided.yaml")
    args = [
        ("image_topic", "image", "sensor_msgs/Image topic hlfp_node classifies"),
        ("use_camera", "", "true: open a local camera instead of image_topic (empty: params file)"),
        ("camera_index", "", "camera to open with use_camera (empty: params file)"),
        ("model", "", "HLFP weights (.safetensors; its config is the .json next to it) (empty: params file)"),
        ("device", "", "auto, cpu, cuda or cuda:N (empty: params file)"),
        ("namespace", "", "namespace of both nodes"),
        ("params_file", default_params, "ROS 2 params file for both nodes"),
        ("audio_input", "", "auto, mic or topic (empty: params file)"),
        ("audio_topic", "audio", "audio_common_msgs/AudioDataStamped topic when audio_input is topic"),
        ("with_audio", "true", "start audio_cue_node too"),
    ]
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=doc) for name, default, doc in args]
        + [OpaqueFunction(function=_nodes)]
    )
