package loom

import "github.com/loomllm/loom/model"

// FromModel puts an already opened model description (from
// model/loader.Open, or a synthetic model from model/synth) on the device
// the options name. The returned Model owns desc: closing it closes desc.
func FromModel(desc *model.Model, opt Options) (*Model, error) {
	return newModel(desc, opt)
}
