"""The chromosome Mask R-CNN (torchvision), sized for thin objects and a CPU budget.

Changes from torchvision's defaults, and why (docs/architecture.md, "Models"):
- no resizing: images come in at the scale the model was trained at (`preprocess.normalise_scale` does it);
- ResNet trunk up to layer3 (strides 4-16, plus a pooled level): chromosomes are 8-15 px wide, layer4 adds
  8 M parameters and little for them;
- anchors 16-192 px with aspect ratios 1/4..4 for long, thin, rotated objects;
- box NMS at 0.7 so two crossing chromosomes with near-identical boxes both survive (mask NMS follows);
- up to 200 detections per image; trainable BatchNorm so training from scratch does not diverge.
"""

from __future__ import annotations

ARCH = "maskrcnn-resnet-fpn-v1"

DEFAULT_CONFIG: dict = {
    "trunk": "resnet18",
    "fpn_channels": 128,
    "representation": 256,
    "num_classes": 2,  # background + chromosome; names come from the crop classifier
    "anchor_sizes": [[16, 24], [32, 48], [64, 96], [128, 192]],
    "aspect_ratios": [0.25, 0.5, 1.0, 2.0, 4.0],
    "image_mean": [0.2, 0.2, 0.2],
    "image_std": [0.25, 0.25, 0.25],
    "box_nms_thresh": 0.7,
    "detections_per_img": 200,
    "box_batch_size_per_image": 128,
    "rpn_post_nms_top_n_train": 600,
    "rpn_post_nms_top_n_test": 1000,
}


def build_maskrcnn(config: dict | None = None, backbone_weights=None):
    """Build the model. `backbone_weights` accepts torchvision ImageNet weights where a user has them cached."""
    import torchvision
    from torch import nn
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import BackboneWithFPN
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
    from torchvision.models.detection.rpn import RPNHead
    from torchvision.ops import MultiScaleRoIAlign
    from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

    cfg = {**DEFAULT_CONFIG, **(config or {})}
    trunk = getattr(torchvision.models, cfg["trunk"])(weights=backbone_weights, norm_layer=nn.BatchNorm2d)
    channels = {"resnet18": [64, 128, 256], "resnet34": [64, 128, 256], "resnet50": [256, 512, 1024]}[
        cfg["trunk"]
    ]
    ch = cfg["fpn_channels"]
    backbone = BackboneWithFPN(
        trunk,
        return_layers={"layer1": "0", "layer2": "1", "layer3": "2"},
        in_channels_list=channels,
        out_channels=ch,
        extra_blocks=LastLevelMaxPool(),
    )
    sizes = tuple(tuple(s) for s in cfg["anchor_sizes"])
    ratios = (tuple(cfg["aspect_ratios"]),) * len(sizes)
    anchors = AnchorGenerator(sizes=sizes, aspect_ratios=ratios)
    rpn_head = RPNHead(ch, anchors.num_anchors_per_location()[0])
    levels = ["0", "1", "2"]
    rep = cfg["representation"]
    model = MaskRCNN(
        backbone,
        num_classes=None,
        rpn_anchor_generator=anchors,
        rpn_head=rpn_head,
        box_roi_pool=MultiScaleRoIAlign(levels, output_size=7, sampling_ratio=2),
        box_head=TwoMLPHead(ch * 7 * 7, rep),
        box_predictor=FastRCNNPredictor(rep, cfg["num_classes"]),
        mask_roi_pool=MultiScaleRoIAlign(levels, output_size=14, sampling_ratio=2),
        mask_head=MaskRCNNHeads(ch, (128, 128, 128, 128), 1),
        mask_predictor=MaskRCNNPredictor(128, 128, cfg["num_classes"]),
        box_nms_thresh=cfg["box_nms_thresh"],
        box_detections_per_img=cfg["detections_per_img"],
        box_batch_size_per_image=cfg["box_batch_size_per_image"],
        box_score_thresh=0.05,
        rpn_post_nms_top_n_train=cfg["rpn_post_nms_top_n_train"],
        rpn_post_nms_top_n_test=cfg["rpn_post_nms_top_n_test"],
    )
    model.transform = _native_scale_transform(cfg["image_mean"], cfg["image_std"])
    return model


def _native_scale_transform(mean, std):
    """torchvision's transform without its resizing: scale is handled before the model (preprocess.py)."""
    from torchvision.models.detection.transform import GeneralizedRCNNTransform

    class NativeScaleTransform(GeneralizedRCNNTransform):
        def resize(self, image, target=None):
            return image, target

    return NativeScaleTransform(
        min_size=1, max_size=1 << 16, image_mean=mean, image_std=std, size_divisible=32
    )
