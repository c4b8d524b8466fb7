# netns test library
